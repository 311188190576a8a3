//! The domain vocabulary shared by every stage: who reported ([`StationKey`]), what was
//! measured ([`Param`], [`Status`], [`Reading`]), why something was refused ([`Reason`],
//! [`Rejection`]) and what the limits said about it ([`Limit`], [`Judged`], [`WindowPoint`]);
//! [`status`]: the park at one instant, as readers see it ([`ParkStatus`]).
//!
//! This module depends on nothing else in the crate, so every stage can speak it.

mod param;
mod reading;
pub mod status;
pub mod topic;

pub use param::{Kind, Param};
pub use reading::{
    Judged, Limit, LimitSource, Reading, Reason, Rejection, StationKey, Status, WindowPoint,
};
pub use status::{HealthState, ParkStatus};
