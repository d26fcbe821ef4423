//! Topic names and topic filters (4.7, 4.8.2): validation, shared
//! subscription parsing and a reference matcher.
//!
//! The matcher is the executable definition of 4.7 used by tests; the broker
//! matches through `tern_routing::Trie`.

/// Why a topic name or filter is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Zero length.
    #[error("[MQTT-4.7.3-1] topic names and topic filters must be at least one character long")]
    Empty,
    /// Longer than 65,535 bytes.
    #[error(
        "[MQTT-4.7.3-3] topic names and topic filters must not encode to more than 65,535 bytes"
    )]
    TooLong,
    /// Contains U+0000.
    #[error("[MQTT-4.7.3-2] topic names and topic filters must not include U+0000")]
    Null,
    /// A `+` or `#` in a topic name.
    #[error("[MQTT-3.3.2-2] [MQTT-4.7.0-1] topic name contains a wildcard character")]
    WildcardInName,
    /// A `#` that is not alone in the last level.
    #[error(
        "[MQTT-4.7.1-2] (v5 [MQTT-4.7.1-1]) '#' must occupy a whole level and be the last level"
    )]
    MultiLevelWildcard,
    /// A `+` that does not occupy a whole level.
    #[error("[MQTT-4.7.1-3] (v5 [MQTT-4.7.1-2]) '+' must occupy a whole level")]
    SingleLevelWildcard,
    /// `$share/` followed by an empty share name or one containing `+`/`#`.
    #[error("[MQTT-4.8.2-1] a shared subscription needs a share name of at least one character without '+' or '#'")]
    ShareName,
    /// `$share/{name}` without `/` and a topic filter after the share name.
    #[error("[MQTT-4.8.2-2] a shared subscription's share name must be followed by '/' and a topic filter")]
    SharedFilter,
}

const SHARE_PREFIX: &str = "$share/";

/// Validates a topic name (PUBLISH, will topic, response topic): non-empty,
/// at most 65,535 bytes, no U+0000, no wildcard.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > usize::from(u16::MAX) {
        return Err(TopicError::TooLong);
    }
    match memchr::memchr3(0, b'+', b'#', name.as_bytes()) {
        None => Ok(()),
        Some(i) if name.as_bytes().get(i) == Some(&0) => Err(TopicError::Null),
        Some(_) => Err(TopicError::WildcardInName),
    }
}

/// Validates a topic filter (SUBSCRIBE, UNSUBSCRIBE), including the
/// `$share/{ShareName}/{filter}` form.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if filter.len() > usize::from(u16::MAX) {
        return Err(TopicError::TooLong);
    }
    if memchr::memchr(0, filter.as_bytes()).is_some() {
        return Err(TopicError::Null);
    }
    if let Some(rest) = filter.strip_prefix(SHARE_PREFIX) {
        let Some((name, inner)) = rest.split_once('/') else {
            // `$share/name` with nothing after it, or `$share/` alone.
            return Err(if rest.is_empty() || rest.contains(['+', '#']) {
                TopicError::ShareName
            } else {
                TopicError::SharedFilter
            });
        };
        if name.is_empty() || name.contains(['+', '#']) {
            return Err(TopicError::ShareName);
        }
        if inner.is_empty() {
            return Err(TopicError::SharedFilter);
        }
        return validate_levels(inner);
    }
    validate_levels(filter)
}

fn validate_levels(filter: &str) -> Result<(), TopicError> {
    if memchr::memchr2(b'+', b'#', filter.as_bytes()).is_none() {
        return Ok(());
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::SingleLevelWildcard);
        }
    }
    Ok(())
}

/// The `[MQTT-4.7.2-1]` family: topic names starting with `$` are the
/// server's, and `$SYS` (the topic and everything under it) is the broker's
/// own: clients may not publish there, and its retained messages are not
/// counted against the clients' limits.
pub fn is_sys_topic(topic: &str) -> bool {
    topic
        .strip_prefix("$SYS")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Splits a shared subscription filter `$share/{group}/{filter}` into the
/// group (share name) and the filter. `None` when `filter` is not a
/// well-formed shared subscription: the share name must be non-empty and
/// hold no `+` or `#` (nor `/`, which ends it) [MQTT5-4.8.2-1], and a
/// non-empty filter must follow it [MQTT5-4.8.2-2], as
/// [`validate_topic_filter`] demands. The one definition: routing and the
/// broker call it too.
pub fn split_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    let (group, inner) = rest.split_once('/')?;
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return None;
    }
    Some((group, inner))
}

/// True when `topic` matches `filter` (4.7): `+` matches exactly one level,
/// `#` any number of levels including the parent (`a/#` matches `a`), and a
/// filter starting with a wildcard never matches a topic starting with `$`
/// [MQTT-4.7.2-1]. `filter` is a plain filter: strip `$share/{group}/` with
/// [`split_shared`] first. Both arguments are assumed valid.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        let ok = [
            "a",
            "/",
            "a/b",
            "/a",
            "a/",
            "//",
            "$SYS/x",
            "sport/tennis/player1",
            "€/ü",
            " ",
        ];
        for name in ok {
            assert_eq!(validate_topic_name(name), Ok(()), "{name:?}");
        }
        let bad = [
            ("", TopicError::Empty),              // [MQTT-4.7.3-1]
            ("a/+", TopicError::WildcardInName),  // [MQTT-3.3.2-2]
            ("#", TopicError::WildcardInName),    // [MQTT-3.3.2-2]
            ("a/b#", TopicError::WildcardInName), // [MQTT-3.3.2-2]
            ("a\0b", TopicError::Null),           // [MQTT-4.7.3-2]
        ];
        for (name, err) in bad {
            assert_eq!(validate_topic_name(name), Err(err), "{name:?}");
        }
        assert_eq!(validate_topic_name(&"a".repeat(65_535)), Ok(()));
        assert_eq!(
            validate_topic_name(&"a".repeat(65_536)),
            Err(TopicError::TooLong)
        ); // [MQTT-4.7.3-3]
    }

    #[test]
    fn topic_filters_mqtt_4_7_1() {
        let ok = [
            "#",
            "+",
            "a",
            "a/#",
            "a/+",
            "+/+",
            "/+",
            "+/",
            "a/+/b",
            "a/+/#",
            "/",
            "//",
            "+/#",
            "$SYS/#",
            "$share/g/a",
            "$share/g/#",
            "$share/g/+/b",
            "$share/g//",
            "$sharex/+",
            "$share",
            "a/$share/b",
        ];
        for filter in ok {
            assert_eq!(validate_topic_filter(filter), Ok(()), "{filter:?}");
        }
        let bad = [
            ("", TopicError::Empty),                          // [MQTT-4.7.3-1]
            ("a\0", TopicError::Null),                        // [MQTT-4.7.3-2]
            ("a#", TopicError::MultiLevelWildcard),           // [MQTT-4.7.1-2]
            ("a/#/b", TopicError::MultiLevelWildcard),        // [MQTT-4.7.1-2]
            ("#/", TopicError::MultiLevelWildcard),           // [MQTT-4.7.1-2]
            ("##", TopicError::MultiLevelWildcard),           // [MQTT-4.7.1-2]
            ("a+", TopicError::SingleLevelWildcard),          // [MQTT-4.7.1-3]
            ("a/+b/c", TopicError::SingleLevelWildcard),      // [MQTT-4.7.1-3]
            ("++", TopicError::SingleLevelWildcard),          // [MQTT-4.7.1-3]
            ("$share/", TopicError::ShareName),               // [MQTT5-4.8.2-1]
            ("$share//a", TopicError::ShareName),             // [MQTT5-4.8.2-1]
            ("$share/g+/a", TopicError::ShareName),           // [MQTT5-4.8.2-1]
            ("$share/#/a", TopicError::ShareName),            // [MQTT5-4.8.2-1]
            ("$share/+", TopicError::ShareName),              // [MQTT5-4.8.2-1]
            ("$share/g", TopicError::SharedFilter),           // [MQTT5-4.8.2-2]
            ("$share/g/", TopicError::SharedFilter),          // [MQTT5-4.8.2-2]
            ("$share/g/a#", TopicError::MultiLevelWildcard),  // [MQTT-4.7.1-2]
            ("$share/g/a+", TopicError::SingleLevelWildcard), // [MQTT-4.7.1-3]
        ];
        for (filter, err) in bad {
            assert_eq!(validate_topic_filter(filter), Err(err), "{filter:?}");
        }
    }

    #[test]
    fn shared_split() {
        assert_eq!(split_shared("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(split_shared("$share/g/#"), Some(("g", "#")));
        assert_eq!(split_shared("$share/g//"), Some(("g", "/")));
        assert_eq!(split_shared("$share/g/+/b"), Some(("g", "+/b")));
        for not_shared in [
            "a/b",
            "$share",
            "$share/",
            "$share/g",
            "$share/g/",
            "$share//a",
            "$share/+/a",
            "$share/#/a",
            "$share/g+/a",
            "$share/g#/a",
            "$sharex/g/a",
            "$SHARE/g/a",
            "a/$share/g/a",
        ] {
            assert_eq!(split_shared(not_shared), None, "{not_shared:?}");
        }
    }

    /// A filter is split exactly when it validates as a `$share/` filter.
    #[test]
    fn split_shared_agrees_with_validation() {
        for filter in [
            "$share/g/a",
            "$share/g/#",
            "$share/g/+/b",
            "$share/g//",
            "$share/",
            "$share//a",
            "$share/g+/a",
            "$share/#/a",
            "$share/+",
            "$share/g",
            "$share/g/",
        ] {
            assert_eq!(
                split_shared(filter).is_some(),
                validate_topic_filter(filter).is_ok(),
                "{filter:?}"
            );
        }
    }

    #[test]
    fn matching_table() {
        let cases = [
            ("a", "a", true),
            ("a", "b", false),
            ("a/b", "a/b", true),
            ("a/b", "a", false),
            ("a", "a/b", false),
            ("+", "a", true),
            ("+", "a/b", false),
            ("+", "/", false),
            ("+/+", "/", true),
            ("/+", "/", true),
            ("+", "", true),
            ("a/+", "a/b", true),
            ("a/+", "a/", true),
            ("a/+", "a", false),
            ("a/+/c", "a/b/c", true),
            ("a/+/c", "a/b/d", false),
            ("#", "a", true),
            ("#", "a/b/c", true),
            ("#", "/", true),
            ("a/#", "a", true), // the parent level (4.7.1.2)
            ("a/#", "a/", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("a/b/#", "a", false),
            ("+/#", "a", true),
            ("+/b/#", "a/b", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("A", "a", false), // no normalisation [MQTT-4.7.3-4]
            // [MQTT-4.7.2-1]: leading wildcards never match `$` topics.
            ("#", "$SYS/a", false),
            ("+/a", "$SYS/a", false),
            ("+", "$", false),
            ("$SYS/#", "$SYS/a", true),
            ("$SYS/#", "$SYS", true),
            ("$SYS/+", "$SYS/a", true),
            ("a/#", "a/$b", true),
            ("a/+", "a/$b", true),
        ];
        for (filter, topic, want) in cases {
            assert_eq!(matches(filter, topic), want, "{filter:?} vs {topic:?}");
        }
    }
}
