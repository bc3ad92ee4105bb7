//! Text matching for many rules at once.
//!
//! Every structure answers "which is the lowest-numbered rule matching this
//! text?", so file order (first match wins) is kept without scanning rules.

use std::collections::{BTreeSet, HashMap};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::RegexSet;

/// Keywords of one matching mode, case-sensitive or not.
#[derive(Debug, Default)]
struct Patterns {
    exact: HashMap<String, usize>,
    prefix: HashMap<String, usize>,
    /// Byte lengths of the prefixes, longest last.
    prefix_lengths: BTreeSet<usize>,
    contains: Vec<(String, usize)>,
}

impl Patterns {
    fn first_exact(&self, text: &str) -> Option<usize> {
        self.exact.get(text).copied()
    }

    fn first_prefix(&self, text: &str) -> Option<usize> {
        self.prefix_lengths
            .iter()
            .take_while(|&&len| len <= text.len())
            .filter(|&&len| text.is_char_boundary(len))
            .filter_map(|&len| self.prefix.get(&text[..len]).copied())
            .min()
    }
}

/// Collects text conditions while rules are compiled.
#[derive(Debug, Default)]
pub(super) struct TextIndexBuilder {
    sensitive: Patterns,
    insensitive: Patterns,
    regexes: Vec<(String, usize)>,
}

impl TextIndexBuilder {
    fn side(&mut self, ignore_case: bool) -> &mut Patterns {
        if ignore_case {
            &mut self.insensitive
        } else {
            &mut self.sensitive
        }
    }

    pub(super) fn exact(&mut self, words: &[String], ignore_case: bool, rule: usize) {
        let side = self.side(ignore_case);
        for w in words {
            let key = if ignore_case {
                w.to_lowercase()
            } else {
                w.clone()
            };
            side.exact.entry(key).or_insert(rule);
        }
    }

    pub(super) fn prefix(&mut self, words: &[String], ignore_case: bool, rule: usize) {
        let side = self.side(ignore_case);
        for w in words {
            let key = if ignore_case {
                w.to_lowercase()
            } else {
                w.clone()
            };
            side.prefix_lengths.insert(key.len());
            side.prefix.entry(key).or_insert(rule);
        }
    }

    pub(super) fn contains(&mut self, words: &[String], ignore_case: bool, rule: usize) {
        let side = self.side(ignore_case);
        for w in words {
            let key = if ignore_case {
                w.to_lowercase()
            } else {
                w.clone()
            };
            side.contains.push((key, rule));
        }
    }

    pub(super) fn regex(
        &mut self,
        pattern: &str,
        ignore_case: bool,
        rule: usize,
    ) -> Result<(), String> {
        let full = if ignore_case {
            format!("(?i:{pattern})")
        } else {
            pattern.to_owned()
        };
        // Compile alone first so that the error names this rule's pattern.
        regex::Regex::new(&full).map_err(|e| format!("invalid regex {pattern:?}: {e}"))?;
        self.regexes.push((full, rule));
        Ok(())
    }

    pub(super) fn build(self) -> Result<TextIndex, String> {
        let automaton =
            |patterns: &[(String, usize)]| -> Result<Option<(AhoCorasick, Vec<usize>)>, String> {
                if patterns.is_empty() {
                    return Ok(None);
                }
                let ac = AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(patterns.iter().map(|(p, _)| p))
                    .map_err(|e| format!("cannot build keyword automaton: {e}"))?;
                Ok(Some((ac, patterns.iter().map(|(_, r)| *r).collect())))
            };
        let regex_set = if self.regexes.is_empty() {
            None
        } else {
            let set = RegexSet::new(self.regexes.iter().map(|(p, _)| p))
                .map_err(|e| format!("cannot combine regexes: {e}"))?;
            Some((set, self.regexes.iter().map(|(_, r)| *r).collect()))
        };
        let needs_lowercase = !self.insensitive.exact.is_empty()
            || !self.insensitive.prefix.is_empty()
            || !self.insensitive.contains.is_empty();
        Ok(TextIndex {
            contains_sensitive: automaton(&self.sensitive.contains)?,
            contains_insensitive: automaton(&self.insensitive.contains)?,
            sensitive: self.sensitive,
            insensitive: self.insensitive,
            regex_set,
            needs_lowercase,
        })
    }
}

/// The compiled text conditions of a rule set.
#[derive(Debug)]
pub(super) struct TextIndex {
    sensitive: Patterns,
    insensitive: Patterns,
    contains_sensitive: Option<(AhoCorasick, Vec<usize>)>,
    contains_insensitive: Option<(AhoCorasick, Vec<usize>)>,
    regex_set: Option<(RegexSet, Vec<usize>)>,
    needs_lowercase: bool,
}

fn first_contained(automaton: &Option<(AhoCorasick, Vec<usize>)>, text: &str) -> Option<usize> {
    let (ac, rules) = automaton.as_ref()?;
    ac.find_overlapping_iter(text)
        .map(|m| rules[m.pattern().as_usize()])
        .min()
}

impl TextIndex {
    /// Lowest-numbered text rule matching `text`.
    pub(super) fn first_match(&self, text: &str) -> Option<usize> {
        let mut best = [
            self.sensitive.first_exact(text),
            self.sensitive.first_prefix(text),
            first_contained(&self.contains_sensitive, text),
        ]
        .into_iter()
        .flatten()
        .min();
        if self.needs_lowercase {
            // Most texts (all CJK ones) have nothing to lower: skip the copy.
            let lower: std::borrow::Cow<'_, str> = if text.chars().any(char::is_uppercase) {
                text.to_lowercase().into()
            } else {
                text.into()
            };
            let ci = [
                self.insensitive.first_exact(&lower),
                self.insensitive.first_prefix(&lower),
                first_contained(&self.contains_insensitive, &lower),
            ]
            .into_iter()
            .flatten()
            .min();
            best = best.into_iter().chain(ci).min();
        }
        if let Some((set, rules)) = &self.regex_set {
            let re = set.matches(text).iter().map(|i| rules[i]).min();
            best = best.into_iter().chain(re).min();
        }
        best
    }
}
