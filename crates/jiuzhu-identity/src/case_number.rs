//! Criminal case numbers (案号) as one text per case: the same number typed with half-width or
//! full-width brackets and digits, or with spaces, is one case. The once-only rules key on it.

/// The canonical form of a case number: full-width parentheses `（）` around the year (any of
/// `()（）〔〕[]［］【】` are read as them), ASCII digits and letters (full-width ones folded),
/// Latin letters upper-cased, and no white space. `（2026）黔0121刑初101号` and
/// `( 2026 )黔０１２１刑初101号` are the same case.
pub fn canonical_case_number(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '(' | '〔' | '[' | '［' | '【' => '（',
            ')' | '〕' | ']' | '］' | '】' => '）',
            // Full-width ASCII (U+FF01..U+FF5E) to its half-width form.
            '\u{FF01}'..='\u{FF5E}' => {
                char::from_u32(u32::from(c) - 0xFEE0).map_or(c, |ascii| match ascii {
                    '(' => '（',
                    ')' => '）',
                    other => other,
                })
            }
            other => other,
        })
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::canonical_case_number;

    #[test]
    fn one_case_number_however_it_is_typed() {
        let official = "（2026）黔0121刑初101号";
        for typed in [
            official,
            "(2026)黔0121刑初101号",
            "〔2026〕黔0121刑初101号",
            "( 2026 ) 黔０１２１刑初１０１号",
            "【2026】黔0121刑初101号\u{3000}",
        ] {
            assert_eq!(canonical_case_number(typed), official, "{typed}");
        }
        assert_ne!(
            canonical_case_number("(2026)黔0121刑初101号"),
            canonical_case_number("(2026)黔0121刑初102号")
        );
        assert_eq!(
            canonical_case_number("(2026)京0105ｘｙ1号"),
            "（2026）京0105XY1号"
        );
    }
}
