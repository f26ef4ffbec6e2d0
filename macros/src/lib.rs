//! Procedural macros of `loads`: the `#[loads::suite]` attribute. Use it through the `loads`
//! crate (`#[loads::suite]`), which documents it.
#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::{Delimiter, Span, TokenTree};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, FnArg, ImplItem, ItemImpl, Lit, Meta, Token, Type};

/// Turns an `impl` block into a loads suite. See `loads::suite` for the documentation.
#[proc_macro_attribute]
pub fn suite(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn doc_of(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// The options of one test: `#[loads(expected = "failure" | "error", weight = N)]`.
#[derive(Default)]
struct TestOptions {
    expected: Option<String>,
    weight: Option<u32>,
}

/// Removes `#[loads(...)]` from a test's attributes and returns its options.
fn take_options(attrs: &mut Vec<syn::Attribute>) -> syn::Result<TestOptions> {
    let mut options = TestOptions::default();
    let mut error = None;
    attrs.retain(|a| {
        if !a.path().is_ident("loads") {
            return true;
        }
        let parsed = a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated);
        match parsed {
            Ok(metas) => {
                for m in metas {
                    match &m {
                        Meta::NameValue(nv) if nv.path.is_ident("expected") => match &nv.value {
                            Expr::Lit(ExprLit { lit: Lit::Str(s), .. })
                                if s.value() == "failure" || s.value() == "error" =>
                            {
                                options.expected = Some(s.value())
                            }
                            other => {
                                error = Some(syn::Error::new_spanned(other, "expected = \"failure\" or \"error\""))
                            }
                        },
                        Meta::NameValue(nv) if nv.path.is_ident("weight") => match &nv.value {
                            Expr::Lit(ExprLit { lit: Lit::Int(n), .. }) => match n.base10_parse::<u32>() {
                                Ok(w) if w >= 1 => options.weight = Some(w),
                                _ => {
                                    error = Some(syn::Error::new_spanned(n, "weight = N, a whole number from 1 to 4294967295"))
                                }
                            },
                            other => {
                                error = Some(syn::Error::new_spanned(other, "weight = N, a whole number of at least 1"))
                            }
                        },
                        other => {
                            error = Some(syn::Error::new_spanned(
                                other,
                                "unknown option; a test takes #[loads(expected = \"failure\")] (or \"error\") and #[loads(weight = N)]",
                            ))
                        }
                    }
                }
            }
            Err(e) => error = Some(e),
        }
        false
    });
    match error {
        Some(e) => Err(e),
        None => Ok(options),
    }
}

/// The names of the data sources a body asks for with a literal, `.data("NAME")`, in order of
/// first appearance (the runner refuses a run that does not declare them, before any load).
fn data_names(ts: proc_macro2::TokenStream, out: &mut Vec<String>) {
    let tokens: Vec<TokenTree> = ts.into_iter().collect();
    for (i, t) in tokens.iter().enumerate() {
        let TokenTree::Group(g) = t else { continue };
        if g.delimiter() == Delimiter::Parenthesis
            && i >= 2
            && matches!(&tokens[i - 1], TokenTree::Ident(id) if id == "data")
            && matches!(&tokens[i - 2], TokenTree::Punct(p) if p.as_char() == '.')
        {
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            if let [TokenTree::Literal(l)] = inner.as_slice()
                && let Ok(s) = syn::parse2::<syn::LitStr>(TokenTree::Literal(l.clone()).into())
                && !out.contains(&s.value())
            {
                out.push(s.value());
            }
        }
        data_names(g.stream(), out);
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut imp: ItemImpl = syn::parse2(item)?;
    if imp.trait_.is_some() {
        return Err(syn::Error::new_spanned(
            &imp,
            "#[loads::suite] goes on an inherent impl block, `impl MySuite { ... }`",
        ));
    }
    if !imp.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &imp.generics,
            "a suite cannot be generic",
        ));
    }
    let ty = &imp.self_ty;
    let type_name = match &**ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .ok_or_else(|| syn::Error::new_spanned(ty, "expected a type name"))?,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "#[loads::suite] needs a named type",
            ));
        }
    };

    let mut name = snake_case(&type_name);
    let mut server: Option<syn::Path> = None;
    let mut server_url: Option<String> = None;
    let mut default_data = String::new();
    let args = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in args {
        match &meta {
            Meta::NameValue(nv) if nv.path.is_ident("name") => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => {
                    let v = s.value();
                    if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(syn::Error::new_spanned(
                            s,
                            "a suite name uses letters, digits and _ only",
                        ));
                    }
                    name = v;
                }
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "expected name = \"suite_name\"",
                    ));
                }
            },
            Meta::NameValue(nv) if nv.path.is_ident("data") => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => default_data = s.value(),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "expected data = \"NAME=FILE[:STRATEGY] ...\" (the data of the suite's functional tests)",
                    ));
                }
            },
            Meta::NameValue(nv) if nv.path.is_ident("server_url") => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => {
                    let v = s.value();
                    if !(v.starts_with("http://") || v.starts_with("https://")) {
                        return Err(syn::Error::new_spanned(
                            s,
                            "server_url is an absolute http:// or https:// URL",
                        ));
                    }
                    server_url = Some(v);
                }
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "expected server_url = \"http://host:port\"",
                    ));
                }
            },
            Meta::NameValue(nv) if nv.path.is_ident("server") => match &nv.value {
                Expr::Path(p) => server = Some(p.path.clone()),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "expected server = path::to::fn (a fn() -> String)",
                    ));
                }
            },
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "unknown option; #[loads::suite] takes name = \"...\", server_url = \"http://...\", server = path::to::fn and data = \"NAME=FILE ...\"",
                ));
            }
        }
    }

    let mut tests = Vec::new();
    let mut has_setup = false;
    let mut has_teardown = false;
    let mut has_on_start = false;
    let mut has_on_stop = false;
    // Data names asked for by the hooks (set-up, tear-down, on_start, on_stop), which run
    // around every test's hits.
    let mut hook_data = Vec::new();

    for it in &mut imp.items {
        let ImplItem::Fn(f) = it else { continue };
        let options = take_options(&mut f.attrs)?;
        if f.sig.asyncness.is_none() {
            continue;
        }
        let takes_mut_self = matches!(f.sig.inputs.first(), Some(FnArg::Receiver(r)) if matches!(r.kind, syn::ReceiverKind::Reference(_, _, Some(_))));
        if !takes_mut_self || f.sig.inputs.len() != 2 {
            continue;
        }
        let ident = f.sig.ident.clone();
        let mut data = Vec::new();
        data_names(quote::ToTokens::to_token_stream(&f.block), &mut data);
        match ident.to_string().as_str() {
            "setup" => has_setup = true,
            "teardown" => has_teardown = true,
            "on_start" => has_on_start = true,
            "on_stop" => has_on_stop = true,
            _ => {
                tests.push((ident, doc_of(&f.attrs), options, data));
                continue;
            }
        }
        hook_data.extend(data);
    }
    if tests.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "this suite has no tests: a test is `async fn name(&mut self, t: &mut TestCase) -> Outcome`",
        ));
    }

    let suite_doc = doc_of(&imp.attrs);
    let infos = tests.iter().map(|(ident, doc, options, data)| {
        let n = ident.to_string();
        let weight = options.weight.unwrap_or(1);
        let mut data = data.clone();
        for d in &hook_data {
            if !data.contains(d) {
                data.push(d.clone());
            }
        }
        quote! { ::loads::__private::TestInfo { name: #n, doc: #doc, weight: #weight, data: &[#(#data),*] } }
    });
    let arms = tests.iter().enumerate().map(|(i, (ident, _, _, _))| {
        quote! { #i => slot.place(<#ty>::#ident(self, t)), }
    });
    let setup = has_setup.then(|| {
        quote! {
            fn setup<'a>(&'a mut self, t: &'a mut ::loads::TestCase,
                slot: &'a mut ::loads::__private::FutureSlot)
                -> ::core::option::Option<::loads::__private::Placed<'a, ::loads::Outcome>> {
                ::core::option::Option::Some(slot.place(<#ty>::setup(self, t)))
            }
        }
    });
    let teardown = has_teardown.then(|| {
        quote! {
            fn teardown<'a>(&'a mut self, t: &'a mut ::loads::TestCase,
                slot: &'a mut ::loads::__private::FutureSlot)
                -> ::core::option::Option<::loads::__private::Placed<'a, ::loads::Outcome>> {
                ::core::option::Option::Some(slot.place(<#ty>::teardown(self, t)))
            }
        }
    });
    let on_start = has_on_start.then(|| {
        quote! {
            fn on_start<'a>(&'a mut self, t: &'a mut ::loads::TestCase,
                slot: &'a mut ::loads::__private::FutureSlot)
                -> ::core::option::Option<::loads::__private::Placed<'a, ::loads::Outcome>> {
                ::core::option::Option::Some(slot.place(<#ty>::on_start(self, t)))
            }
        }
    });
    let on_stop = has_on_stop.then(|| {
        quote! {
            fn on_stop<'a>(&'a mut self, t: &'a mut ::loads::TestCase,
                slot: &'a mut ::loads::__private::FutureSlot)
                -> ::core::option::Option<::loads::__private::Placed<'a, ::loads::Outcome>> {
                ::core::option::Option::Some(slot.place(<#ty>::on_stop(self, t)))
            }
        }
    });
    let server_expr = match (&server, &server_url) {
        (Some(p), _) => {
            quote! { ::core::option::Option::Some(#p as fn() -> ::std::string::String) }
        }
        (None, Some(u)) => quote! {
            ::core::option::Option::Some((|| ::std::string::String::from(#u)) as fn() -> ::std::string::String)
        },
        (None, None) => quote! { ::core::option::Option::None },
    };
    let server_url_const = match &server_url {
        Some(u) => {
            quote! { const SERVER_URL: ::core::option::Option<&'static str> = ::core::option::Option::Some(#u); }
        }
        None => quote! {},
    };
    let module = format_ident!("loads_{}", name);
    let functional = tests.iter().map(|(ident, _, options, _)| {
        let n = ident.to_string();
        let expect = match options.expected.as_deref() {
            Some("failure") => quote! { ::loads::__private::Expect::Failure },
            Some("error") => quote! { ::loads::__private::Expect::Error },
            _ => quote! { ::loads::__private::Expect::Success },
        };
        quote! {
            #[test]
            fn #ident() {
                ::loads::__private::run_test::<super::#ty>(#n, #server_expr, #expect);
            }
        }
    });

    Ok(quote! {
        #imp

        impl ::loads::Suite for #ty {
            const NAME: &'static str = #name;
            const DOC: &'static str = #suite_doc;
            const TESTS: &'static [::loads::__private::TestInfo] = &[#(#infos),*];
            #server_url_const
            const DATA: &'static str = #default_data;
            fn new_user() -> Self {
                <Self as ::core::default::Default>::default()
            }
            fn run_test<'a>(&'a mut self, index: usize, t: &'a mut ::loads::TestCase,
                slot: &'a mut ::loads::__private::FutureSlot)
                -> ::loads::__private::Placed<'a, ::loads::Outcome> {
                match index {
                    #(#arms)*
                    _ => slot.place(async move {
                        ::core::result::Result::Err(::loads::TestError::error(
                            ::std::format!("suite {} has no test number {}", #name, index)))
                    }),
                }
            }
            #setup
            #teardown
            #on_start
            #on_stop
        }

        ::loads::__private::inventory::submit! { ::loads::__private::SuiteEntry::of::<#ty>() }

        #[cfg(test)]
        mod #module {
            #[allow(unused_imports)]
            use super::*;
            #(#functional)*
        }
    })
}
