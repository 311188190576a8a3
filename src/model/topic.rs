//! Topic templates (`mqtt.topics`): `env/{park}/{site}/{station}`, where `{name}` captures one
//! topic level. A template is checked once, when the decoder is built, so that a typo in the
//! configuration stops the service at start-up (and `check-config`) instead of rejecting every
//! message later. Part of the vocabulary: the configuration checks templates with it, `decode`
//! matches topics with it.

use super::StationKey;

/// A topic template that cannot be used. Each variant names the template as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("mqtt.topics is empty: at least one topic template is needed")]
    NoTemplates,
    #[error("topic template {template:?}: MQTT wildcards '+' and '#' are not allowed; use {{name}} to capture a level")]
    Wildcard { template: String },
    #[error("topic template {template:?}: level {level:?} must be either literal text or exactly one {{name}}")]
    BadLevel { template: String, level: String },
    #[error("topic template {template:?}: {{{name}}} is missing (park, site and station must each appear once)")]
    Missing {
        template: String,
        name: &'static str,
    },
    #[error("topic template {template:?}: {{{name}}} appears more than once")]
    Duplicate { template: String, name: String },
}

/// One level of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    /// Must equal the topic level exactly (MQTT topics are case-sensitive).
    Literal(String),
    /// `{name}`: any single level. Only park, site and station are kept.
    Capture,
}

/// A parsed template with the level positions of the three identifiers.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    levels: Vec<Level>,
    park: usize,
    site: usize,
    station: usize,
}

/// Why a topic gave no station key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// No template has the topic's shape.
    NoTemplate,
    /// A template has the shape, but a captured level is not an identifier (the detail says
    /// which).
    BadIdentifier(String),
}

impl Template {
    pub fn parse(template: &str) -> Result<Template, TemplateError> {
        let err_template = || template.to_owned();
        if template.contains(['+', '#']) {
            return Err(TemplateError::Wildcard {
                template: err_template(),
            });
        }
        let mut levels = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let (mut park, mut site, mut station) = (None, None, None);
        for (i, level) in template.split('/').enumerate() {
            if !level.contains(['{', '}']) {
                levels.push(Level::Literal(level.to_owned()));
                continue;
            }
            let name = level
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .filter(|n| !n.is_empty() && !n.contains(['{', '}']))
                .ok_or_else(|| TemplateError::BadLevel {
                    template: err_template(),
                    level: level.to_owned(),
                })?;
            if names.contains(&name) {
                return Err(TemplateError::Duplicate {
                    template: err_template(),
                    name: name.to_owned(),
                });
            }
            names.push(name);
            match name {
                "park" => park = Some(i),
                "site" => site = Some(i),
                "station" => station = Some(i),
                _ => {}
            }
            levels.push(Level::Capture);
        }
        let need = |pos: Option<usize>, name: &'static str| {
            pos.ok_or_else(|| TemplateError::Missing {
                template: err_template(),
                name,
            })
        };
        Ok(Template {
            park: need(park, "park")?,
            site: need(site, "site")?,
            station: need(station, "station")?,
            source: template.to_owned(),
            levels,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The MQTT subscription filter: every capture becomes `+`.
    pub fn filter(&self) -> String {
        let parts: Vec<&str> = self
            .levels
            .iter()
            .map(|l| match l {
                Level::Literal(s) => s.as_str(),
                Level::Capture => "+",
            })
            .collect();
        parts.join("/")
    }

    /// The captured `(park, site, station)` when the topic has this template's shape.
    /// Identifiers are not checked here.
    pub fn captures<'t>(&self, topic: &'t str) -> Option<[&'t str; 3]> {
        let mut out = [""; 3];
        let mut parts = topic.split('/');
        for (i, level) in self.levels.iter().enumerate() {
            let part = parts.next()?;
            match level {
                Level::Literal(lit) if lit != part => return None,
                Level::Literal(_) => {}
                Level::Capture => {
                    if i == self.park {
                        out[0] = part;
                    } else if i == self.site {
                        out[1] = part;
                    } else if i == self.station {
                        out[2] = part;
                    }
                }
            }
        }
        // Extra levels: the `+` filter would not have delivered them, and guessing which
        // levels hold the station would be worse than refusing.
        match parts.next() {
            Some(_) => None,
            None => Some(out),
        }
    }
}

/// Parses every template; the list must not be empty.
pub fn parse_all(templates: &[String]) -> Result<Vec<Template>, TemplateError> {
    if templates.is_empty() {
        return Err(TemplateError::NoTemplates);
    }
    templates.iter().map(|t| Template::parse(t)).collect()
}

/// Tries the templates in configured order; the first whose shape matches and whose captures
/// are identifiers wins.
pub fn match_topic(templates: &[Template], topic: &str) -> Result<StationKey, Mismatch> {
    let mut bad = None;
    for t in templates {
        if let Some(caps) = t.captures(topic) {
            match StationKey::parse(caps[0], caps[1], caps[2]) {
                Ok(key) => return Ok(key),
                Err(why) => {
                    bad.get_or_insert(why);
                }
            }
        }
    }
    Err(bad.map_or(Mismatch::NoTemplate, Mismatch::BadIdentifier))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::parse(s).unwrap()
    }

    #[test]
    fn contract_template_captures_three_levels() {
        // Contract "Topics and payloads": {park}, {site}, {station} capture one level each.
        let tpl = t("env/{park}/{site}/{station}");
        assert_eq!(tpl.filter(), "env/+/+/+");
        assert_eq!(
            tpl.captures("env/nam-dinh-vu/nd-textile/outfall-1"),
            Some(["nam-dinh-vu", "nd-textile", "outfall-1"])
        );
    }

    #[test]
    fn extra_or_missing_levels_do_not_match() {
        let tpl = t("env/{park}/{site}/{station}");
        assert_eq!(tpl.captures("env/a/b/c/d"), None);
        assert_eq!(tpl.captures("env/a/b"), None);
        assert_eq!(tpl.captures("env/a/b/c/"), None);
    }

    #[test]
    fn literal_levels_must_match_exactly_and_case_sensitively() {
        let tpl = t("env/{park}/{site}/{station}/data");
        assert!(tpl.captures("env/p/s/st/data").is_some());
        assert_eq!(tpl.captures("env/p/s/st/status"), None);
        assert_eq!(tpl.captures("ENV/p/s/st/data"), None);
        assert_eq!(tpl.captures("telemetry/p/s/st/data"), None);
    }

    #[test]
    fn captures_may_come_in_any_order_and_other_names_are_ignored() {
        let tpl = t("{station}/x/{region}/{site}/{park}");
        assert_eq!(tpl.filter(), "+/x/+/+/+");
        assert_eq!(tpl.captures("st1/x/north/s1/p1"), Some(["p1", "s1", "st1"]));
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(matches!(
            Template::parse("env/+/{park}/{site}/{station}"),
            Err(TemplateError::Wildcard { .. })
        ));
        assert!(matches!(
            Template::parse("env/{park}/{site}/#"),
            Err(TemplateError::Wildcard { .. })
        ));
        assert!(matches!(
            Template::parse("env/{park}/{site}"),
            Err(TemplateError::Missing {
                name: "station",
                ..
            })
        ));
        assert!(matches!(
            Template::parse("env/{park}/{park}/{site}/{station}"),
            Err(TemplateError::Duplicate { .. })
        ));
        for level in ["x{park}", "{park}x", "{}", "{pa{rk}", "{park"] {
            let tpl = format!("env/{level}/{{site}}/{{station}}");
            assert!(
                matches!(Template::parse(&tpl), Err(TemplateError::BadLevel { .. })),
                "{tpl}"
            );
        }
        assert_eq!(parse_all(&[]).unwrap_err(), TemplateError::NoTemplates);
    }

    #[test]
    fn first_matching_template_with_valid_identifiers_wins() {
        let tpls = parse_all(&[
            "env/{park}/{site}/{station}".to_owned(),
            "legacy/{site}/{station}/{park}".to_owned(),
        ])
        .unwrap();
        let key = |p, s, st| StationKey::parse(p, s, st).unwrap();
        assert_eq!(match_topic(&tpls, "env/p/s/st"), Ok(key("p", "s", "st")));
        assert_eq!(match_topic(&tpls, "legacy/s/st/p"), Ok(key("p", "s", "st")));
        assert_eq!(
            match_topic(&tpls, "other/p/s/st"),
            Err(Mismatch::NoTemplate)
        );
        // The shape matches but a captured level is empty: not an identifier.
        assert!(matches!(
            match_topic(&tpls, "env/p//st"),
            Err(Mismatch::BadIdentifier(_))
        ));
        assert!(matches!(
            match_topic(&tpls, "env/p/s t/st"),
            Err(Mismatch::BadIdentifier(_))
        ));
    }
}
