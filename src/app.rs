//! (being written)
pub struct App;
