//! Chinese record linkage, pure Rust with no service dependencies: normalisation of what people
//! write (traditional forms, full-width characters, polyphonic pinyin, look-alike characters,
//! resident ids, dates, places), blocking so that the cost of a party grows with its candidates
//! rather than with the registry, Fellegi–Sunter scoring with m/u probabilities estimated from the data
//! scored, term-frequency adjustment of names (nationally and within the county), the evidence of
//! a case's other parties (the households they are linked to), calibration of
//! probabilities on labelled pairs, and per-field explanations a prosecutor can read.
//! The clue acquisition service and the `jiuzhu link` batch command both use it.

pub mod compare;
pub mod index;
pub mod model;
pub mod normalise;
pub mod train;

pub use compare::{Comparison, FIELDS, Field, compare};
pub use index::{Candidate, CaseContext, Decision, Index, MAX_BLOCK, Thresholds, blocking_keys};
pub use model::{Calibration, CaseHousehold, Explained, Model, Score};
pub use normalise::{Normalised, Written};
pub use train::{
    ModelFile, ModelFileError, Review, Trained, TrainingOptions, TrainingReport, train,
};
