//! Small components shared by several pages.

pub mod chart;
pub mod live;
pub mod log_tail;
pub mod pager;
