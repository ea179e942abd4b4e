//! Page building: the layout (header, language switch, footer), escaping, form widgets, the
//! step indicator and inline errors. Plain HTML forms: the core path needs no JavaScript.

use std::collections::HashMap;
use std::fmt::Write;

use super::i18n::Lang;
use super::security::Ctx;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A whole page. `refresh` adds a meta refresh (payment and face-check waits work without
/// JavaScript).
pub fn page(ctx: &Ctx, title: &str, body: &str, refresh: Option<u32>) -> String {
    let l = ctx.lang;
    let other = match l {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    let refresh = refresh.map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">")).unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}<title>{title} · cloudca</title>\
<link rel=\"stylesheet\" href=\"/static/app.css\"></head><body>\
<header><a class=\"brand\" href=\"/\">{brand}</a><nav><a href=\"/orders\">{orders}</a><a href=\"/seals\">{seals}</a>\
<a href=\"/help\">{help}</a><a id=\"lang\" href=\"/lang/{code}\">{name}</a></nav></header>\
<main><h1>{title}</h1>{body}</main><footer>cloudca · {brand}</footer></body></html>",
        lang = l.html(),
        title = esc(title),
        brand = l.t("Cloud certificates"),
        orders = l.t("Order management"),
        seals = l.t("Seal authorisation"),
        help = l.t("Help"),
        code = other.0,
        name = other.1,
    )
}

/// The step indicator: done, current, to do.
pub fn steps(lang: Lang, steps: &[(String, bool)], current: Option<&str>) -> String {
    let mut out = String::from("<ol class=\"steps\">");
    for (name, done) in steps {
        let class = if Some(name.as_str()) == current {
            "current"
        } else if *done {
            "done"
        } else {
            "todo"
        };
        let _ = write!(out, "<li class=\"{class}\" data-step=\"{}\">{}</li>", esc(name), esc(lang.t(leak(name))));
    }
    out.push_str("</ol>");
    out
}

/// Step names come from a fixed set; map them back to `'static` keys for translation.
fn leak(name: &str) -> &'static str {
    crate::ra::flow::Step::parse(name).map_or("", crate::ra::flow::Step::name)
}

/// Values and errors of a form being redisplayed.
#[derive(Debug, Clone, Default)]
pub struct FormState {
    /// Submitted values by field name (dotted).
    pub values: HashMap<String, String>,
    /// Error messages by field name.
    pub errors: HashMap<String, String>,
    /// A message for the whole form.
    pub message: Option<String>,
}

impl FormState {
    fn value(&self, name: &str) -> String {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// The form-level message, if any.
    pub fn banner(&self) -> String {
        self.message.as_ref().map(|m| format!("<p class=\"alert\" role=\"alert\">{}</p>", esc(m))).unwrap_or_default()
    }
}

/// A labelled input with its inline error.
pub fn input(state: &FormState, label: &str, name: &str, kind: &str, required: bool) -> String {
    let error = state.errors.get(name);
    let invalid = if error.is_some() { " aria-invalid=\"true\"" } else { "" };
    let req = if required { " required" } else { "" };
    let err = error
        .map(|e| format!("<span class=\"error\" data-field=\"{}\">{}</span>", esc(name), esc(e)))
        .unwrap_or_default();
    format!(
        "<label>{label}<input type=\"{kind}\" name=\"{n}\" value=\"{v}\"{req}{invalid}>{err}</label>",
        label = esc(label),
        n = esc(name),
        v = esc(&state.value(name)),
    )
}

/// A group of radio buttons.
pub fn radios(state: &FormState, legend: &str, name: &str, options: &[(String, String)]) -> String {
    let chosen = state.value(name);
    let mut out = format!("<fieldset><legend>{}</legend>", esc(legend));
    for (i, (value, label)) in options.iter().enumerate() {
        let checked = if chosen == *value || (chosen.is_empty() && i == 0) { " checked" } else { "" };
        let _ = write!(
            out,
            "<label class=\"choice\"><input type=\"radio\" name=\"{}\" value=\"{}\"{checked}> {}</label>",
            esc(name),
            esc(value),
            esc(label)
        );
    }
    if let Some(e) = state.errors.get(name) {
        let _ = write!(out, "<span class=\"error\" data-field=\"{}\">{}</span>", esc(name), esc(e));
    }
    out.push_str("</fieldset>");
    out
}

/// A checkbox.
pub fn checkbox(state: &FormState, label: &str, name: &str) -> String {
    let checked = if state.value(name) == "on" { " checked" } else { "" };
    let err = state
        .errors
        .get(name)
        .map(|e| format!("<span class=\"error\" data-field=\"{}\">{}</span>", esc(name), esc(e)))
        .unwrap_or_default();
    format!(
        "<label class=\"choice\"><input type=\"checkbox\" name=\"{}\"{checked}> {}</label>{err}",
        esc(name),
        esc(label)
    )
}

/// A POST form with the CSRF field.
pub fn form(ctx: &Ctx, action: &str, id: &str, inner: &str, submit: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{a}\" id=\"{id}\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">{inner}\
<button type=\"submit\" name=\"submit\" value=\"{id}\">{s}</button></form>",
        a = esc(action),
        c = esc(&ctx.csrf),
        s = esc(submit),
    )
}

/// Money in fen as yuan.
pub fn yuan(fen: i64) -> String {
    format!("¥{}.{:02}", fen / 100, fen % 100)
}
