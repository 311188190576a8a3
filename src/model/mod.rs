//! The domain vocabulary shared by every stage: who reported ([`StationKey`]; a topic through
//! [`topic`], a file through [`file_name`]; the files it sends are named by [`file_template`]), what was measured ([`Param`] and their table,
//! [`Params`]; [`Status`], [`Reading`]), why something was refused ([`Reason`], [`Rejection`])
//! and what the limits said about it ([`Limit`], [`Judged`], [`WindowPoint`]);
//! [`status`]: the park at one instant, as readers see it ([`ParkStatus`]).
//!
//! This module depends on nothing else in the crate, so every stage can speak it.

pub mod file_name;
pub mod file_template;
pub mod fxhash;
mod param;
mod reading;
pub mod status;
pub mod topic;

pub use param::{Definition, DefinitionError, Kind, Param, Params, MOLAR_VOLUME_L};
pub use reading::{
    Judged, Limit, LimitSource, Reading, Reason, Rejection, StationKey, Status, WindowPoint,
};
pub use status::{HealthState, ParkStatus};
