//! Small components shared by several pages.

pub mod chart;
pub mod live;
pub mod pager;
