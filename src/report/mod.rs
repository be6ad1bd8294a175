//! Reports of a study: `report.md` with the ablation table beside the paper's numbers, and PNG plots.

pub mod data;
