//! The `like` predicate op (PROTOCOL.md §7.1) without a regex engine.
//!
//! Upstream builds `new RegExp('^' + escaped + '$', 'i')`; this module matches
//! the same strings on UTF-16 code units, with JS's case-insensitive rules.

/// One step of a `like` pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    /// `%`: any run of code units (JS `.*`, so no line terminators).
    AnyRun,
    /// `_`: exactly one code unit (JS `.`, so not a line terminator).
    AnyUnit,
    /// Any other character, one UTF-16 code unit at a time.
    Unit(u16),
}

/// Whether `text` matches the SQL-ish `pattern`, case-insensitively and anchored.
///
/// `%` and `_` match any run and any single UTF-16 code unit, never a line
/// terminator (JS `.` without the `s` flag); an astral character counts as two
/// units, as in JS. Every other pattern character matches itself.
///
/// Deliberate difference: upstream forgets to escape `*` and `?`, so they act
/// as regex quantifiers there (`a*` matches `""`, an unbalanced `**` throws).
/// §7.1 marks that as a quirk; here they match a literal `*` and `?`.
pub(crate) fn matches(text: &str, pattern: &str) -> bool {
    let tokens: Vec<Token> = pattern
        .encode_utf16()
        .map(|unit| match unit {
            0x25 => Token::AnyRun,
            0x5f => Token::AnyUnit,
            other => Token::Unit(canonicalize(other)),
        })
        .collect();
    let text: Vec<u16> = text.encode_utf16().collect();

    // reachable[j]: the tokens so far can consume exactly text[..j].
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for token in tokens {
        let mut next = vec![false; text.len() + 1];
        if token == Token::AnyRun {
            next[0] = reachable[0];
        }
        for (j, &unit) in text.iter().enumerate() {
            next[j + 1] = match token {
                Token::AnyRun => reachable[j + 1] || (next[j] && !is_line_terminator(unit)),
                Token::AnyUnit => reachable[j] && !is_line_terminator(unit),
                Token::Unit(expected) => reachable[j] && canonicalize(unit) == expected,
            };
        }
        reachable = next;
    }

    reachable[text.len()]
}

/// JS `Canonicalize` for the `i` flag without `u`: the simple uppercase of a
/// code unit, unless that needs two units or would map non-ASCII to ASCII.
fn canonicalize(unit: u16) -> u16 {
    let Some(c) = char::from_u32(u32::from(unit)) else {
        return unit; // a lone surrogate half
    };
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => match u16::try_from(u32::from(u)) {
            Ok(mapped) if !(unit >= 128 && mapped < 128) => mapped,
            _ => unit,
        },
        _ => unit,
    }
}

fn is_line_terminator(unit: u16) -> bool {
    matches!(unit, 0x0a | 0x0d | 0x2028 | 0x2029)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_matches_any_run_including_none() {
        assert!(matches("John Smith", "john%"));
        assert!(matches("John", "john%"));
        assert!(matches("Big John", "%JOHN"));
        assert!(matches("xay", "x%a%y"));
    }

    #[test]
    fn underscore_matches_exactly_one_code_unit() {
        assert!(matches("cat", "c_t"));
        assert!(!matches("ct", "c_t"));
        assert!(!matches("\u{1F600}", "_"));
        assert!(matches("\u{1F600}", "__"));
    }

    #[test]
    fn patterns_are_anchored_at_both_ends() {
        assert!(!matches("xjohn", "john"));
        assert!(!matches("johnx", "john"));
    }

    #[test]
    fn regex_metacharacters_match_themselves() {
        assert!(matches("a.b+(c)|[d]$^{e}\\", "a.b+(c)|[d]$^{e}\\"));
        assert!(!matches("axb", "a.b"));
    }

    #[test]
    fn star_and_question_mark_are_literals_unlike_upstream() {
        assert!(matches("a*", "a*"));
        assert!(!matches("", "a*"));
        assert!(!matches("aaa", "a*"));
        assert!(matches("why?", "why?"));
    }

    #[test]
    fn wildcards_do_not_cross_line_terminators() {
        assert!(!matches("a\nb", "a%b"));
        assert!(!matches("a\rb", "a_b"));
        assert!(matches("a\nb", "a\nb"));
    }

    #[test]
    fn case_folding_follows_javascript_without_the_unicode_flag() {
        assert!(matches("ÉCOLE", "école"));
        assert!(matches("STRASSE", "strasse"));
        assert!(!matches("straße", "STRASSE"));
        assert!(!matches("\u{17f}", "s"));
    }
}
