//! The words games are played with: a list loaded once, chosen from uniformly.
//!
//! The built-in list is `words/words.txt` (source and licence in `words/SOURCE.md`);
//! `--dictionary FILE` replaces it. Tests make every game deterministic with a list of
//! one word given in memory instead ([`Dictionary::from_words`], [`crate::Config::words`]).

use std::path::{Path, PathBuf};

use rand::seq::IndexedRandom;
use thiserror::Error;

/// The built-in word list, compiled into the binary so it needs no files at run time.
const BUILTIN: &str = include_str!("../words/words.txt");

#[derive(Debug, Error)]
pub enum DictionaryError {
    #[error("cannot read the dictionary {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line} of the dictionary is not a lowercase word a-z: {word:?}")]
    BadWord { line: usize, word: String },
    #[error("the dictionary has no words")]
    Empty,
}

/// A non-empty list of lowercase words.
#[derive(Debug, Clone)]
pub struct Dictionary {
    words: Vec<Box<str>>,
}

impl Dictionary {
    /// The word list shipped with the service.
    pub fn builtin() -> Dictionary {
        Dictionary::parse(BUILTIN).expect("the built-in word list is valid")
    }

    /// Reads a word list: one word per line, blank lines ignored.
    pub fn from_file(path: &Path) -> Result<Dictionary, DictionaryError> {
        let text = std::fs::read_to_string(path).map_err(|source| DictionaryError::Read {
            path: path.to_owned(),
            source,
        })?;
        Dictionary::parse(&text)
    }

    /// Parses a word list: one word per line (surrounding white space ignored),
    /// blank lines ignored, every word lowercase a-z.
    pub fn parse(text: &str) -> Result<Dictionary, DictionaryError> {
        Dictionary::from_words(text.lines())
    }

    /// A word list given word by word, under the rules of a file's lines (an error's `line`
    /// is the word's place in the list); how tests give a server its words without a file.
    pub fn from_words<'a>(
        words: impl IntoIterator<Item = &'a str>,
    ) -> Result<Dictionary, DictionaryError> {
        let mut list = Vec::new();
        for (index, line) in words.into_iter().enumerate() {
            let word = line.trim();
            if word.is_empty() {
                continue;
            }
            if !word.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(DictionaryError::BadWord {
                    line: index + 1,
                    word: word.chars().take(40).collect(),
                });
            }
            list.push(word.into());
        }
        if list.is_empty() {
            return Err(DictionaryError::Empty);
        }
        Ok(Dictionary { words: list })
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// A word chosen uniformly at random.
    pub fn random_word(&self) -> &str {
        self.words
            .choose(&mut rand::rng())
            .expect("a dictionary is never empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_list_has_a_few_thousand_words_of_four_letters_or_more() {
        let dictionary = Dictionary::builtin();
        assert!(dictionary.len() > 3000, "{}", dictionary.len());
        assert!(dictionary.words.iter().all(|w| w.len() >= 4));
    }

    #[test]
    fn blank_lines_and_surrounding_space_are_ignored() {
        let dictionary = Dictionary::parse("\n  apple \n\nbanana\n").unwrap();
        assert_eq!(dictionary.len(), 2);
    }

    #[test]
    fn a_word_that_is_not_lowercase_a_to_z_is_rejected_with_its_line() {
        let err = Dictionary::parse("apple\nBanana\n").unwrap_err();
        assert!(
            matches!(err, DictionaryError::BadWord { line: 2, .. }),
            "{err}"
        );
        assert!(matches!(
            Dictionary::parse("don't"),
            Err(DictionaryError::BadWord { line: 1, .. })
        ));
    }

    #[test]
    fn an_empty_list_is_rejected() {
        assert!(matches!(
            Dictionary::parse("\n \n"),
            Err(DictionaryError::Empty)
        ));
    }

    #[test]
    fn words_given_one_by_one_follow_the_rules_of_a_files_lines() {
        let dictionary = Dictionary::from_words(["hello", " world "]).unwrap();
        assert_eq!(dictionary.len(), 2);
        assert!(matches!(
            Dictionary::from_words(["hello", "Hello"]),
            Err(DictionaryError::BadWord { line: 2, .. })
        ));
        assert!(matches!(
            Dictionary::from_words([]),
            Err(DictionaryError::Empty)
        ));
    }

    #[test]
    fn every_word_can_be_chosen() {
        let dictionary = Dictionary::parse("one\ntwo\nthree").unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            seen.insert(dictionary.random_word().to_string());
        }
        assert_eq!(seen.len(), 3);
    }
}
