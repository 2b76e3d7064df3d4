//! The `#[task]` attribute of rcelery. (Being written.)
use proc_macro::TokenStream;

/// Turns a function into an rcelery task.
#[proc_macro_attribute]
pub fn task(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
