//! The pages' words in Simplified Chinese (the default) and English, from `i18n/*.json`
//! (flat `key: text` maps, the same keys in both; a test holds them and the templates to that).

use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    Chinese,
    English,
}

const ZH: &str = include_str!("../i18n/zh-CN.json");
const EN: &str = include_str!("../i18n/en.json");

fn table(language: Language) -> &'static HashMap<String, String> {
    static TABLES: OnceLock<[HashMap<String, String>; 2]> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        [
            serde_json::from_str(ZH).unwrap_or_default(),
            serde_json::from_str(EN).unwrap_or_default(),
        ]
    });
    match language {
        Language::Chinese => &tables[0],
        Language::English => &tables[1],
    }
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::Chinese => "zh-CN",
            Language::English => "en",
        }
    }

    pub fn from_code(code: &str) -> Self {
        if code.eq_ignore_ascii_case("en") {
            Language::English
        } else {
            Language::Chinese
        }
    }

    /// The other language (the switch in the page header).
    pub fn other(self) -> Self {
        match self {
            Language::Chinese => Language::English,
            Language::English => Language::Chinese,
        }
    }

    /// The text of `key`; the key itself when missing (a test keeps that from shipping).
    pub fn t(self, key: &str) -> &'static str {
        table(self).get(key).map(String::as_str).unwrap_or_else(|| {
            tracing::warn!(key, "no text for key");
            "?"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(text: &str) -> BTreeSet<String> {
        serde_json::from_str::<HashMap<String, String>>(text)
            .map(|map| map.into_keys().collect())
            .unwrap_or_default()
    }

    #[test]
    fn both_languages_have_every_key_the_templates_use() -> Result<(), Box<dyn std::error::Error>> {
        let (zh, en) = (keys(ZH), keys(EN));
        assert!(zh.len() > 20, "{} keys", zh.len());
        assert_eq!(zh, en, "zh-CN and en differ");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut used = BTreeSet::new();
        for entry in std::fs::read_dir(dir.join("templates"))? {
            let text = std::fs::read_to_string(entry?.path())?;
            for piece in text.split(".t(\"").skip(1) {
                if let Some(key) = piece.split('"').next() {
                    used.insert(key.to_owned());
                }
            }
        }
        for entry in std::fs::read_dir(dir.join("src/pages"))? {
            let text = std::fs::read_to_string(entry?.path())?;
            for piece in text.split(".t(\"").skip(1) {
                if let Some(key) = piece.split('"').next() {
                    used.insert(key.to_owned());
                }
            }
        }
        let missing: Vec<_> = used.difference(&zh).collect();
        assert!(missing.is_empty(), "keys without text: {missing:?}");
        assert!(used.len() > 20, "{} keys used", used.len());
        // Keys made from the policy's ids: every category, material, fact and exclusion.
        let relief = jiuzhu_policy::relief::ReliefPolicy::parse(jiuzhu_policy::relief::SHIPPED)?;
        let mut from_policy: Vec<String> = relief
            .materials
            .keys()
            .map(|m| format!("material.{m}"))
            .collect();
        for category in &relief.categories {
            from_policy.push(format!("category.{}", category.id));
            from_policy.extend(category.requires.iter().map(|fact| format!("fact.{fact}")));
        }
        from_policy.extend(
            relief
                .exclusions
                .iter()
                .map(|e| format!("exclusion.{}", e.id)),
        );
        for tier in relief
            .approval_tiers
            .iter()
            .map(|t| &t.approver)
            .chain([&relief.exceptional_approver])
        {
            from_policy.push(format!("tier.{tier}"));
        }
        let missing: Vec<_> = from_policy
            .iter()
            .filter(|key| !zh.contains(*key))
            .collect();
        assert!(missing.is_empty(), "policy ids without text: {missing:?}");
        Ok(())
    }
}
