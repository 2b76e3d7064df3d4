//! The `#[task]` attribute of rcelery.
//!
//! ```ignore
//! #[rcelery::task(name = "tasks.fail")]
//! fn fail(#[default("boom")] message: String, #[default("ValueError")] exc_type: String) -> TaskResult<()> { ... }
//! ```
//!
//! leaves the function as written (callable and testable) and adds a module of the same name
//! whose `task()` returns the `TaskDef` to register: `app.register(fail::task())`.
//!
//! Attribute options: `name = "..."` (the Celery task name; defaults to the function name),
//! `ignore_result`, `acks_late = bool`, `track_started = bool`, `time_limit = seconds`,
//! `soft_time_limit = seconds` (int or float, as in Python), `rate_limit = "10/s"` (Celery's
//! notation, checked at compile time; a bare number is per second), `max_retries = N` (or
//! `None`: unlimited), `default_retry_delay = seconds`, `autoretry_for = ["ValueError"]`,
//! `dont_autoretry_for = [...]`, `retry_backoff = true|seconds`, `retry_backoff_max = seconds`,
//! `retry_jitter = bool`, and `inline` (run a plain `fn` on the
//! async runtime instead of the blocking pool: only for quick, non-blocking work).
//!
//! Parameter attributes: `#[default(expr)]` (a Python default value), `#[args]` (Python's
//! `*args`), `#[kwargs]` (Python's `**kwargs`). A parameter of type `Context` or `&Context`
//! receives the request context and is not a Python parameter; nor is one of type `State<T>`
//! (as axum's: `State(pool): State<PgPool>`), which receives the app's state value of type
//! `T`, required of the app when the worker starts.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, FnArg, ItemFn, Lit, Meta, Pat, Token, Type};

/// Turns a function into an rcelery task. See the crate docs.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Default)]
struct Options {
    name: Option<String>,
    ignore_result: Option<bool>,
    acks_late: Option<bool>,
    track_started: Option<bool>,
    inline: bool,
    /// `Some(None)`: `max_retries = None` (unlimited).
    max_retries: Option<Option<i64>>,
    default_retry_delay: Option<f64>,
    autoretry_for: Vec<String>,
    dont_autoretry_for: Vec<String>,
    /// `retry_backoff`: `Some(0.0)` for False.
    retry_backoff: Option<f64>,
    retry_backoff_max: Option<i64>,
    retry_jitter: Option<bool>,
    time_limit: Option<Seconds>,
    soft_time_limit: Option<Seconds>,
    rate_limit: Option<String>,
}

/// A number of seconds as written: kept an `int` or a `float`, as Celery stores it.
#[derive(Clone, Copy)]
enum Seconds {
    Int(i64),
    Float(f64),
}

enum ParamKind {
    Named {
        default: Option<Expr>,
    },
    VarArgs,
    VarKw,
    Context {
        by_ref: bool,
    },
    /// `State<T>`: taken from the context through `FromContext`.
    State,
}

struct Param {
    ident: syn::Ident,
    ty: Type,
    kind: ParamKind,
}

fn parse_options(attr: TokenStream2) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut o = Options::default();
    for meta in metas {
        let key = meta
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match (&meta, key.as_str()) {
            (Meta::NameValue(nv), "name") => o.name = Some(lit_str(&nv.value)?),
            (Meta::Path(_), "ignore_result") => o.ignore_result = Some(true),
            (Meta::Path(_), "inline") => o.inline = true,
            (Meta::NameValue(nv), "ignore_result") => o.ignore_result = Some(lit_bool(&nv.value)?),
            (Meta::NameValue(nv), "acks_late") => o.acks_late = Some(lit_bool(&nv.value)?),
            (Meta::NameValue(nv), "track_started") => o.track_started = Some(lit_bool(&nv.value)?),
            (Meta::NameValue(nv), "max_retries") => o.max_retries = Some(lit_opt_int(&nv.value)?),
            (Meta::NameValue(nv), "default_retry_delay") => {
                o.default_retry_delay = Some(lit_number(&nv.value)?)
            }
            (Meta::NameValue(nv), "autoretry_for") => o.autoretry_for = lit_str_list(&nv.value)?,
            (Meta::NameValue(nv), "dont_autoretry_for") => {
                o.dont_autoretry_for = lit_str_list(&nv.value)?
            }
            (Meta::NameValue(nv), "retry_backoff") => {
                o.retry_backoff = Some(lit_backoff(&nv.value)?)
            }
            (Meta::NameValue(nv), "retry_backoff_max") => {
                o.retry_backoff_max = Some(lit_number(&nv.value)? as i64)
            }
            (Meta::NameValue(nv), "retry_jitter") => o.retry_jitter = Some(lit_bool(&nv.value)?),
            (Meta::NameValue(nv), "time_limit") => o.time_limit = Some(lit_seconds(&nv.value)?),
            (Meta::NameValue(nv), "soft_time_limit") => {
                o.soft_time_limit = Some(lit_seconds(&nv.value)?)
            }
            (Meta::NameValue(nv), "rate_limit") => o.rate_limit = Some(lit_rate(&nv.value)?),
            _ => return Err(syn::Error::new_spanned(meta, "unknown task option")),
        }
    }
    Ok(o)
}

fn lit_str(e: &Expr) -> syn::Result<String> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Str(s) => Ok(s.value()),
            _ => Err(syn::Error::new_spanned(e, "expected a string")),
        },
        _ => Err(syn::Error::new_spanned(e, "expected a string")),
    }
}

fn lit_opt_int(e: &Expr) -> syn::Result<Option<i64>> {
    match e {
        Expr::Path(p) if p.path.is_ident("None") => Ok(None),
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i.base10_parse().map(Some),
            _ => Err(syn::Error::new_spanned(e, "expected an integer or None")),
        },
        _ => Err(syn::Error::new_spanned(e, "expected an integer or None")),
    }
}

/// `["ValueError", "myapp.Flaky"]`: exception names.
fn lit_str_list(e: &Expr) -> syn::Result<Vec<String>> {
    match e {
        Expr::Array(a) => a.elems.iter().map(lit_str).collect(),
        _ => Err(syn::Error::new_spanned(
            e,
            "expected a list of exception names, e.g. [\"ValueError\"]",
        )),
    }
}

/// `retry_backoff`: a bool (True is a factor of 1) or a number of seconds.
fn lit_backoff(e: &Expr) -> syn::Result<f64> {
    match e {
        Expr::Lit(l) if matches!(l.lit, Lit::Bool(_)) => Ok(if lit_bool(e)? { 1.0 } else { 0.0 }),
        _ => lit_number(e),
    }
}

fn lit_number(e: &Expr) -> syn::Result<f64> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i.base10_parse::<i64>().map(|v| v as f64),
            Lit::Float(f) => f.base10_parse(),
            _ => Err(syn::Error::new_spanned(e, "expected a number")),
        },
        _ => Err(syn::Error::new_spanned(e, "expected a number")),
    }
}

fn lit_seconds(e: &Expr) -> syn::Result<Seconds> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i.base10_parse().map(Seconds::Int),
            Lit::Float(f) => f.base10_parse().map(Seconds::Float),
            _ => Err(syn::Error::new_spanned(e, "expected a number of seconds")),
        },
        _ => Err(syn::Error::new_spanned(e, "expected a number of seconds")),
    }
}

/// A rate limit: a string in Celery's notation or a number (per second), checked with the
/// rules of Celery's `rate()` (the worker reads it again with `rcelery::worker::parse_rate`).
fn lit_rate(e: &Expr) -> syn::Result<String> {
    let text = match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Str(s) => s.value(),
            Lit::Int(i) => i.base10_digits().to_owned(),
            Lit::Float(f) => f.base10_digits().to_owned(),
            _ => {
                return Err(syn::Error::new_spanned(
                    e,
                    "expected a rate such as \"10/s\"",
                ))
            }
        },
        _ => {
            return Err(syn::Error::new_spanned(
                e,
                "expected a rate such as \"10/s\"",
            ))
        }
    };
    let trimmed = text.trim();
    let (ops, unit) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let valid =
        matches!(unit, "" | "s" | "m" | "h") && ops.trim().parse::<f64>().is_ok_and(|n| n >= 0.0);
    if trimmed.is_empty() || valid {
        Ok(text)
    } else {
        Err(syn::Error::new_spanned(e, "invalid rate limit: expected e.g. \"10/s\", \"100/m\", \"1000/h\" or a number per second"))
    }
}

fn lit_bool(e: &Expr) -> syn::Result<bool> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Bool(b) => Ok(b.value),
            _ => Err(syn::Error::new_spanned(e, "expected true or false")),
        },
        _ => Err(syn::Error::new_spanned(e, "expected true or false")),
    }
}

fn is_context(ty: &Type) -> Option<bool> {
    let (inner, by_ref) = match ty {
        Type::Reference(r) => (&*r.elem, true),
        other => (other, false),
    };
    match inner {
        Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Context") => {
            Some(by_ref)
        }
        _ => None,
    }
}

fn is_state(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "State"))
}

fn parse_params(func: &mut ItemFn) -> syn::Result<Vec<Param>> {
    let mut params = Vec::new();
    for (n, arg) in func.sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(pt) = arg else {
            return Err(syn::Error::new_spanned(
                arg,
                "tasks are free functions; `self` is not allowed",
            ));
        };
        if is_state(&pt.ty) {
            // Any pattern, as axum's `State(pool): State<PgPool>`.
            params.push(Param {
                ident: format_ident!("state{}", n),
                ty: (*pt.ty).clone(),
                kind: ParamKind::State,
            });
            continue;
        }
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new_spanned(
                &pt.pat,
                "task parameters must be plain names",
            ));
        };
        let mut kind = ParamKind::Named { default: None };
        let mut kept = Vec::new();
        for a in pt.attrs.drain(..) {
            if a.path().is_ident("default") {
                kind = ParamKind::Named {
                    default: Some(a.parse_args::<Expr>()?),
                };
            } else if a.path().is_ident("args") {
                kind = ParamKind::VarArgs;
            } else if a.path().is_ident("kwargs") {
                kind = ParamKind::VarKw;
            } else {
                kept.push(a);
            }
        }
        pt.attrs = kept;
        if let Some(by_ref) = is_context(&pt.ty) {
            kind = ParamKind::Context { by_ref };
        }
        params.push(Param {
            ident: pi.ident.clone(),
            ty: (*pt.ty).clone(),
            kind,
        });
    }
    Ok(params)
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let opts = parse_options(attr)?;
    let mut func: ItemFn = syn::parse2(item)?;
    let params = parse_params(&mut func)?;
    let fn_ident = func.sig.ident.clone();
    let vis = func.vis.clone();
    let is_async = func.sig.asyncness.is_some();
    let task_name = opts.name.clone().unwrap_or_else(|| fn_ident.to_string());
    let func_str = fn_ident.to_string();

    let named: Vec<&Param> = params
        .iter()
        .filter(|p| matches!(p.kind, ParamKind::Named { .. }))
        .collect();
    let names: Vec<String> = named.iter().map(|p| p.ident.to_string()).collect();
    let optional = named
        .iter()
        .rev()
        .take_while(|p| matches!(&p.kind, ParamKind::Named { default: Some(_) }))
        .count();
    let varargs = params.iter().any(|p| matches!(p.kind, ParamKind::VarArgs));
    let varkw = params.iter().any(|p| matches!(p.kind, ParamKind::VarKw));

    let rc = quote!(::rcelery);
    let mut extracts = Vec::new();
    let mut call_args = Vec::new();
    let mut slot_idents = Vec::new();
    let mut slot_names = Vec::new();
    let mut named_index = 0usize;
    let mut requires = Vec::new();
    for p in &params {
        let ident = &p.ident;
        let ty = &p.ty;
        let local = format_ident!("__arg_{}", ident);
        match &p.kind {
            ParamKind::Named { default } => {
                let i = named_index;
                named_index += 1;
                let name = ident.to_string();
                let default = match default {
                    Some(expr) => {
                        quote!(::core::option::Option::Some(|| -> #ty { ::core::convert::Into::into(#expr) }))
                    }
                    None => quote!(::core::option::Option::None::<fn() -> #ty>),
                };
                extracts.push(quote! {
                    let #local: ::core::option::Option<#ty> =
                        #rc::task::__private::extract::<#ty, _>(&mut __bound, #i, #name, __SIG.func, #default)?;
                });
                slot_idents.push(local.clone());
                slot_names.push(name);
                call_args.push(quote!(#local));
            }
            ParamKind::VarArgs => {
                extracts.push(quote! {
                    let #local: #ty = #rc::task::__private::rest_args::<#ty>(&mut __bound, __SIG.func)?;
                });
                call_args.push(quote!(#local));
            }
            ParamKind::VarKw => {
                extracts.push(quote! {
                    let #local: #ty = #rc::task::__private::rest_kwargs::<#ty>(&mut __bound, __SIG.func)?;
                });
                call_args.push(quote!(#local));
            }
            ParamKind::State => {
                extracts.push(quote! {
                    let #local: #ty = <#ty as #rc::state::FromContext>::from_context(&__ctx)?;
                });
                requires.push(quote!(<#ty as #rc::state::FromContext>::requirement()));
                call_args.push(quote!(#local));
            }
            ParamKind::Context { by_ref } => {
                call_args.push(if *by_ref {
                    quote!(&__ctx)
                } else {
                    quote!(__ctx.clone())
                });
            }
        }
    }
    let unwrap_slots = if slot_idents.is_empty() {
        quote!()
    } else {
        quote! {
            let mut __missing: ::std::vec::Vec<&'static str> = ::std::vec::Vec::new();
            #( if #slot_idents.is_none() { __missing.push(#slot_names); } )*
            let (#(::core::option::Option::Some(#slot_idents),)*) = (#(#slot_idents,)*) else {
                return ::core::result::Result::Err(#rc::task::missing_error(__SIG.func, &__missing));
            };
        }
    };
    let body = quote! {
        let mut __bound = #rc::task::bind(&__SIG, __args, __kwargs)?;
        #(#extracts)*
        #unwrap_slots
    };
    let handler = if is_async {
        quote! {
            #rc::task::Handler::Async(::std::sync::Arc::new(
                |__ctx: #rc::task::Context, __args: ::std::vec::Vec<#rc::Value>, __kwargs: #rc::Dict| {
                    ::std::boxed::Box::pin(async move {
                        #body
                        #rc::task::IntoTaskResult::into_task_result(super::#fn_ident(#(#call_args),*).await)
                    })
                },
            ))
        }
    } else {
        let variant = if opts.inline {
            quote!(Inline)
        } else {
            quote!(Blocking)
        };
        quote! {
            #rc::task::Handler::#variant(::std::sync::Arc::new(
                |__ctx: #rc::task::Context, __args: ::std::vec::Vec<#rc::Value>, __kwargs: #rc::Dict| {
                    #body
                    #rc::task::IntoTaskResult::into_task_result(super::#fn_ident(#(#call_args),*))
                },
            ))
        }
    };
    let opt = |o: Option<bool>| match o {
        Some(b) => quote!(::core::option::Option::Some(#b)),
        None => quote!(::core::option::Option::None),
    };
    let (ignore_result, acks_late, track_started) = (
        opt(opts.ignore_result),
        opt(opts.acks_late),
        opt(opts.track_started),
    );
    let max_retries = match opts.max_retries {
        Some(Some(n)) => quote!(::core::option::Option::Some(::core::option::Option::Some(#n))),
        Some(None) => quote!(::core::option::Option::Some(::core::option::Option::None)),
        None => quote!(::core::option::Option::None),
    };
    let default_retry_delay = match opts.default_retry_delay {
        Some(d) => quote!(::core::option::Option::Some(#d)),
        None => quote!(::core::option::Option::None),
    };
    let seconds = |o: Option<Seconds>| match o {
        Some(Seconds::Int(i)) => quote!(::core::option::Option::Some(#rc::task::Seconds::Int(#i))),
        Some(Seconds::Float(f)) => {
            quote!(::core::option::Option::Some(#rc::task::Seconds::Float(#f)))
        }
        None => quote!(::core::option::Option::None),
    };
    let (time_limit, soft_time_limit) = (seconds(opts.time_limit), seconds(opts.soft_time_limit));
    let rate_limit = match &opts.rate_limit {
        Some(r) => quote!(::core::option::Option::Some(::std::string::String::from(#r))),
        None => quote!(::core::option::Option::None),
    };
    let autoretry = if opts.autoretry_for.is_empty() {
        quote!(::core::option::Option::None)
    } else {
        let on = &opts.autoretry_for;
        let not_on = &opts.dont_autoretry_for;
        let backoff = match opts.retry_backoff.filter(|b| *b != 0.0) {
            Some(b) => quote!(::core::option::Option::Some(#b)),
            None => quote!(::core::option::Option::None),
        };
        let backoff_max = opts.retry_backoff_max.unwrap_or(600);
        let jitter = opts.retry_jitter.unwrap_or(true);
        quote!(::core::option::Option::Some(#rc::task::AutoRetry {
            on: ::std::vec![#(::std::string::String::from(#on)),*],
            not_on: ::std::vec![#(::std::string::String::from(#not_on)),*],
            backoff: #backoff,
            backoff_max: #backoff_max,
            jitter: #jitter,
        }))
    };
    let doc = format!("The rcelery task `{task_name}` (generated by `#[task]` from `{func_str}`).");
    Ok(quote! {
        #func

        #[doc = #doc]
        #[allow(non_snake_case, unused_imports, clippy::all)]
        #vis mod #fn_ident {
            use super::*;

            const __SIG: #rc::task::Signature = #rc::task::Signature {
                func: #func_str,
                params: &[#(#names),*],
                optional: #optional,
                varargs: #varargs,
                varkw: #varkw,
            };

            /// The task definition to register with an `App`.
            pub fn task() -> #rc::task::TaskDef {
                #rc::task::TaskDef {
                    name: ::std::string::String::from(#task_name),
                    handler: #handler,
                    options: #rc::task::TaskOptions {
                        ignore_result: #ignore_result,
                        acks_late: #acks_late,
                        track_started: #track_started,
                        time_limit: #time_limit,
                        soft_time_limit: #soft_time_limit,
                        rate_limit: #rate_limit,
                        max_retries: #max_retries,
                        default_retry_delay: #default_retry_delay,
                        autoretry: #autoretry,
                        ..::core::default::Default::default()
                    },
                    requires: ::std::vec![#(#requires),*],
                }
            }
        }
    })
}
