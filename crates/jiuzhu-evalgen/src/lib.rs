//! Independent evaluation data. The project's own generators (`jiuzhu gen registry`, `parties`,
//! `relief-history`) were written beside the models they test, so a model can end up tuned to
//! their quirks. The generators here were written separately, from the domain alone, and every
//! model figure is reported on both: a change that helps one and hurts the other is not an
//! improvement.

pub mod linkage;
pub mod relief;
