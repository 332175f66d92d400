//! Properties that must hold for any input: normalisation is idempotent and never panics,
//! comparison is symmetric, ids with a wrong character never validate, and better agreement on
//! any field never lowers a score.

use jiuzhu_linkage::normalise::{self, Normalised, Written};
use jiuzhu_linkage::{FIELDS, Model, compare};
use proptest::prelude::*;

const NAME_CHARS: &str = "王李张劉陈張偉伟丽麗秀英华華军軍己已ＡＢ１２ ·";

fn name_strategy() -> impl Strategy<Value = String> {
    let chars: Vec<char> = NAME_CHARS.chars().collect();
    proptest::collection::vec(proptest::sample::select(chars), 0..6)
        .prop_map(|c| c.into_iter().collect())
}

fn record(name: &str, birth: &str) -> Normalised {
    Normalised::from_written(&Written {
        name,
        birth_date: birth,
        region_code: "522701",
        ..Written::default()
    })
}

proptest! {
    #[test]
    fn normalising_a_name_twice_changes_nothing(raw in name_strategy()) {
        let once = normalise::name(&raw);
        prop_assert_eq!(normalise::name(&once), once.clone());
        prop_assert!(!once.chars().any(char::is_whitespace));
    }

    #[test]
    fn any_text_normalises_without_panicking(raw in "\\PC{0,40}") {
        let _ = Normalised::from_written(&Written {
            name: &raw,
            resident_id: &raw,
            gender: &raw,
            birth_date: &raw,
            phone: &raw,
            region_code: &raw,
            township: &raw,
            village: &raw,
        });
        let _ = normalise::village_from_address(&raw);
    }

    #[test]
    fn comparison_is_symmetric(a in name_strategy(), b in name_strategy(),
                               d1 in 0u32..400, d2 in 0u32..400) {
        let date = |d: u32| format!("1980-{:02}-{:02}", 1 + d % 12, 1 + d % 28);
        let (x, y) = (record(&a, &date(d1)), record(&b, &date(d2)));
        prop_assert_eq!(compare(&x, &y), compare(&y, &x));
    }

    #[test]
    fn a_mistyped_id_character_never_validates(position in 0usize..17, shift in 1u32..10) {
        let valid = "11010519491231002X";
        prop_assert!(normalise::resident_id(valid).is_some());
        let mut chars: Vec<char> = valid.chars().collect();
        let digit = chars[position].to_digit(10).unwrap_or(0);
        chars[position] = char::from_digit((digit + shift) % 10, 10).unwrap_or('0');
        let typo: String = chars.into_iter().collect();
        prop_assert!(normalise::resident_id(&typo).is_none(), "{}", typo);
    }

    #[test]
    fn better_agreement_on_a_field_never_lowers_the_score(levels in proptest::array::uniform7(0u8..8)) {
        let model = Model::default();
        let mut comparison = [0u8; 7];
        for (i, field) in FIELDS.iter().enumerate() {
            comparison[i] = levels[i] % u8::try_from(field.levels().len()).unwrap_or(1);
        }
        let base = model.score(&comparison, None).weight;
        for (i, field) in FIELDS.iter().enumerate() {
            let worst = u8::try_from(field.levels().len() - 1).unwrap_or(0);
            let mut better = comparison;
            better[i] = 1;
            let mut worse = comparison;
            worse[i] = worst;
            prop_assert!(model.score(&better, None).weight >= base - 1e-9);
            prop_assert!(model.score(&worse, None).weight <= base + 1e-9);
        }
    }
}
