//! Submitted forms to the RA's JSON, and the RA's answers back to inline messages.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::client::Answer;
use super::html::FormState;
use super::i18n::{field_error, Lang};

/// The step's checkboxes: a browser sends a checked one as `on` and leaves an unchecked one
/// out, so each is a boolean either way.
pub fn checkboxes(step: &str) -> &'static [&'static str] {
    match step {
        "verification" => &["accept_agreement"],
        "agent" => &["legal_rep_in_person", "accept_terms"],
        "product" => &["invoice"],
        "signature" => &["accept_terms"],
        _ => &[],
    }
}

/// Form fields (`legal_rep.name`) to a JSON object; empty values are left out, the given
/// checkboxes are booleans, `csrf` and `submit` are not data.
pub fn to_json(values: &HashMap<String, String>, boxes: &[&str]) -> Value {
    let mut root = Map::new();
    for (key, value) in values {
        if key == "csrf" || key == "submit" || value.trim().is_empty() || boxes.contains(&key.as_str()) {
            continue;
        }
        insert(&mut root, key, Value::String(value.trim().to_string()));
    }
    for key in boxes {
        root.insert(key.to_string(), Value::Bool(values.get(*key).is_some_and(|v| v == "on")));
    }
    Value::Object(root)
}

fn insert(map: &mut Map<String, Value>, dotted: &str, value: Value) {
    match dotted.split_once('.') {
        None => {
            map.insert(dotted.to_string(), value);
        }
        Some((head, rest)) => {
            let child = map.entry(head.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = child {
                insert(inner, rest, value);
            }
        }
    }
}

/// The RA's refusal as the form shows it: field errors inline (in the page language), the
/// rest as one message.
pub fn refusal(lang: Lang, values: HashMap<String, String>, answer: &Answer, strip: &[&str]) -> FormState {
    let mut errors = HashMap::new();
    if let Some(list) = answer.body["errors"].as_array() {
        for e in list {
            let mut field = e["field"].as_str().unwrap_or_default().to_string();
            for prefix in strip {
                if let Some(rest) = field.strip_prefix(prefix) {
                    field = rest.to_string();
                }
            }
            let message =
                field_error(lang, e["code"].as_str().unwrap_or_default(), e["message"].as_str().unwrap_or_default());
            errors.insert(field, message);
        }
    }
    let message = if errors.is_empty() {
        Some(message(lang, answer))
    } else {
        Some(lang.t("Please correct the marked fields.").to_string())
    };
    FormState { values, errors, message }
}

/// A one-line message for a refusal.
pub fn message(lang: Lang, answer: &Answer) -> String {
    if answer.status.as_u16() == 429 {
        return too_many(lang, answer.retry_after);
    }
    let title = answer.title();
    if lang == Lang::En {
        return title;
    }
    match answer.status.as_u16() {
        401 => "验证码错误或已过期，请重新获取".into(),
        502 | 503 => "服务暂时不可用，请稍后重试或选择其他验证方式".into(),
        409 if title.starts_with("an application for this") => {
            "该证件在本渠道已有未完成的申请，请凭订单凭证或通过订单查询继续办理（闲置的申请会在若干天后自动取消）"
                .into()
        }
        422 if answer.body["alternatives"].is_array() => format!("身份核验未通过：{title}"),
        409 if answer.body["no_invoice"].is_string() => no_invoice_zh(answer.body["no_invoice"].as_str()).into(),
        _ => title,
    }
}

/// Why an order has no invoice to send again (the daemon's `no_invoice`), in Chinese.
fn no_invoice_zh(reason: Option<&str>) -> &'static str {
    match reason {
        Some("free") => "该订单未收取费用，无需开具发票",
        Some("not-paid") => "订单尚未支付，暂无发票",
        _ => "该订单办理时未申请发票，无法重开",
    }
}

/// A rate limit's refusal: when to try again, from the daemon's `Retry-After`.
pub fn too_many(lang: Lang, retry_after: Option<u64>) -> String {
    match (lang, retry_after) {
        (Lang::Zh, Some(n)) => format!("操作过于频繁，请 {n} 秒后再试"),
        (Lang::Zh, None) => "操作过于频繁，请稍后再试".into(),
        (Lang::En, Some(n)) => format!("Too many attempts; try again in {n} s."),
        (Lang::En, None) => "Too many attempts; try again later.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_says_when_to_try_again_in_the_page_language() {
        let answer = Answer {
            status: reqwest::StatusCode::TOO_MANY_REQUESTS,
            body: serde_json::json!({ "title": "too many attempts; try again in 7 s", "retry_after": 7 }),
            retry_after: Some(7),
        };
        assert_eq!(message(Lang::Zh, &answer), "操作过于频繁，请 7 秒后再试");
        assert_eq!(message(Lang::En, &answer), "Too many attempts; try again in 7 s.");
        assert_eq!(too_many(Lang::Zh, None), "操作过于频繁，请稍后再试");
    }

    #[test]
    fn an_order_without_an_invoice_says_why_in_the_page_language() {
        let answer = |reason: &str, title: &str| Answer {
            status: reqwest::StatusCode::CONFLICT,
            body: serde_json::json!({ "title": title, "no_invoice": reason }),
            retry_after: None,
        };
        let free = answer("free", "the order charged nothing: there is no amount to invoice");
        assert_eq!(message(Lang::Zh, &free), "该订单未收取费用，无需开具发票");
        assert_eq!(message(Lang::En, &free), "the order charged nothing: there is no amount to invoice");
        let not_asked = answer("not-requested", "no invoice was asked for with this order");
        assert_eq!(message(Lang::Zh, &not_asked), "该订单办理时未申请发票，无法重开");
    }

    #[test]
    fn dotted_fields_nest_and_checkboxes_are_booleans() {
        let values: HashMap<String, String> = [
            ("name", "示例"),
            ("legal_rep.name", "张三"),
            ("legal_rep.phone", " 13800138000 "),
            ("legal_rep.card", ""),
            ("accept_terms", "on"),
            ("csrf", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let json = to_json(&values, checkboxes("signature"));
        assert_eq!(json["legal_rep"]["name"], "张三");
        assert_eq!(json["legal_rep"]["phone"], "13800138000");
        assert!(json["legal_rep"].get("card").is_none() && json.get("csrf").is_none());
        assert_eq!(json["accept_terms"], true);
    }
}
