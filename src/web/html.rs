//! Page building with [`maud`]: the layout (header, language switch, the channel's
//! customer-service phone, footer), form widgets, the step indicator and inline errors. Every
//! value spliced into a template is escaped by maud; nothing in `web/` opts out of that, so
//! no text from the daemon or the applicant reaches the page as markup (a unit test in
//! [`super::i18n`] checks the sources for it). Plain HTML forms: the core path needs no
//! JavaScript.

use std::collections::HashMap;

use maud::{html, Markup, DOCTYPE};

use super::i18n::Lang;
use super::security::Ctx;

/// A whole page. `refresh` adds a meta refresh (payment and face-check waits work without
/// JavaScript).
pub fn page(ctx: &Ctx, title: &str, body: Markup, refresh: Option<u32>) -> String {
    let l = ctx.lang;
    let (other_code, other_name) = match l {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    let site = &ctx.site;
    html! {
        (DOCTYPE)
        html lang=(l.html()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh { meta http-equiv="refresh" content=(seconds); }
                title { (title) " · cloudca" }
                link rel="stylesheet" href="/static/app.css";
            }
            body {
                header {
                    a.brand href=(ctx.url("/")) { (l.t("Cloud certificates")) }
                    nav {
                        a href=(ctx.url("/orders")) { (l.t("Order management")) }
                        a href=(ctx.url("/seals")) { (l.t("Seal authorisation")) }
                        a #nav-help href=(ctx.url("/help")) { (l.t("Help")) }
                        a #nav-about href=(ctx.url("/about")) { (l.t("About")) }
                        a #lang href=(ctx.url(&format!("/lang/{other_code}"))) { (other_name) }
                    }
                    @if let Some(phone) = &site.phone {
                        p.contact #service-phone data-channel=(site.channel) {
                            (l.t("Customer service")) ": " a href={ "tel:" (phone) } { (phone) }
                        }
                    }
                }
                main { h1 { (title) } (body) }
                footer {
                    "cloudca · " (l.t("Cloud certificates"))
                    @if let Some(phone) = &site.phone { " · " (l.t("Customer service")) " " (phone) }
                }
            }
        }
    }
    .into_string()
}

/// The step indicator: done, current, to do.
pub fn steps(lang: Lang, steps: &[(String, bool)], current: Option<&str>) -> Markup {
    html! {
        ol.steps {
            @for (name, done) in steps {
                @let class = if Some(name.as_str()) == current { "current" } else if *done { "done" } else { "todo" };
                li class=(class) data-step=(name) { (lang.t(step_key(name))) }
            }
        }
    }
}

/// Step names come from a fixed set; map them back to `'static` keys for translation.
pub fn step_key(name: &str) -> &'static str {
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
    fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// The form-level message, if any.
    pub fn banner(&self) -> Markup {
        html! { @if let Some(m) = &self.message { p.alert role="alert" { (m) } } }
    }

    fn error(&self, name: &str) -> Markup {
        html! { @if let Some(e) = self.errors.get(name) { span.error data-field=(name) { (e) } } }
    }
}

/// A labelled input with its inline error.
pub fn input(state: &FormState, label: &str, name: &str, kind: &str, required: bool) -> Markup {
    let invalid = state.errors.contains_key(name);
    html! {
        label {
            (label)
            input type=(kind) name=(name) value=(state.value(name)) required[required] aria-invalid=[invalid.then_some("true")];
            (state.error(name))
        }
    }
}

/// Radio buttons of one name in labelled groups (empty groups left out): one choice, shown
/// in stages without a script (handbook B2: whether the legal representative takes part, then
/// the method).
pub fn grouped_radios(state: &FormState, legend: &str, name: &str, groups: &[(&str, Vec<(String, String)>)]) -> Markup {
    let chosen = state.value(name);
    html! {
        fieldset.grouped {
            legend { (legend) }
            @for (heading, options) in groups.iter().filter(|(_, o)| !o.is_empty()) {
                fieldset.group {
                    legend { (heading) }
                    @for (value, label) in options {
                        label.choice { input type="radio" name=(name) value=(value) checked[chosen == value] required; " " (label) }
                    }
                }
            }
            (state.error(name))
        }
    }
}

/// A group of radio buttons.
pub fn radios(state: &FormState, legend: &str, name: &str, options: &[(String, String)]) -> Markup {
    let chosen = state.value(name);
    html! {
        fieldset {
            legend { (legend) }
            @for (i, (value, label)) in options.iter().enumerate() {
                @let checked = chosen == value || (chosen.is_empty() && i == 0);
                label.choice { input type="radio" name=(name) value=(value) checked[checked]; " " (label) }
            }
            (state.error(name))
        }
    }
}

/// A labelled drop-down list with its inline error; the first option unless one was chosen.
pub fn select(state: &FormState, label: &str, name: &str, options: &[(&str, &str)]) -> Markup {
    let chosen = state.value(name);
    html! {
        label {
            (label)
            select name=(name) {
                @for (value, text) in options {
                    option value=(value) selected[chosen == *value] { (text) }
                }
            }
            (state.error(name))
        }
    }
}

/// A checkbox.
pub fn checkbox(state: &FormState, label: &str, name: &str) -> Markup {
    html! {
        label.choice { input type="checkbox" name=(name) checked[state.value(name) == "on"]; " " (label) }
        (state.error(name))
    }
}

/// A POST form with the CSRF field. `action` is a path of this channel's pages.
pub fn form(ctx: &Ctx, action: &str, id: &str, inner: Markup, submit: &str) -> Markup {
    html! {
        form method="post" action=(ctx.url(action)) id=(id) {
            input type="hidden" name="csrf" value=(ctx.csrf);
            (inner)
            button type="submit" name="submit" value=(id) { (submit) }
        }
    }
}

/// Money in fen as yuan.
pub fn yuan(fen: i64) -> String {
    format!("¥{}.{:02}", fen / 100, fen % 100)
}
