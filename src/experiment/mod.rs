//! `repro run`: experiment files ([`spec`]), tasks ([`tasks`]), the training loop ([`train`]), the run store
//! ([`store`]), the study runner ([`runner`]), multi-stage training ([`stages`]) and the per-study lock ([`lock`]).

pub mod lock;
pub mod monitor;
pub mod runner;
pub mod select;
pub mod slurm;
pub mod spec;
pub mod stages;
pub mod store;
pub mod sweep;
pub mod tasks;
pub mod train;
