//! Issue 15 point 6, "money is never lost" (security review M5 and L3), told as the stories
//! of the review: a payment through a QR code the applicant has moved on from, a second
//! payment of one order, a payment landing after a cancellation, a cancel racing an officer's
//! approval. Over the real listeners, against the sandbox wallet, whose pay page shows what
//! the payer's wallet app would (`open|paid|closed, refunded N of M fen`).

use serde_json::{json, Value};

use crate::common::*;
use crate::ra::{add_product, count, personal_signed, ra_ca, wait_state, Client, PDF};

/// The personal product's price.
const PRICE: i64 = 40000;

/// Shows the payment QR code of a wallet: returns the intent's reference.
async fn show_qr(web: &Client<'_>, id: &str, token: &str, method: &str) -> String {
    let path = format!("/v1/ra/orders/{id}/steps/payment");
    let v = web.ok("POST", &path, Some(token), Some(json!({ "method": method }))).await;
    v["payment"]["provider_ref"].as_str().unwrap_or_else(|| panic!("{v}")).to_string()
}

/// A signed webhook the sandbox wallet has not delivered yet: (timestamp, signature, body).
struct HeldWebhook(String, String, String);

/// The payer pays a QR code; the wallet's webhook is held back (in flight) for the test to
/// deliver when the story wants it.
async fn pay_held(web: &Client<'_>, reference: &str) -> HeldWebhook {
    let r = web.http.post(format!("{}/sandbox/pay/{reference}?hold=true", web.api)).send().await.unwrap();
    assert_eq!(r.status(), 200, "the wallet takes the payment");
    let v: Value = r.json().await.unwrap();
    let field = |k: &str| v[k].as_str().unwrap().to_string();
    HeldWebhook(field("timestamp"), field("signature"), field("body"))
}

/// Delivers a webhook to the daemon as the wallet does; returns the HTTP status.
async fn deliver(web: &Client<'_>, hook: &HeldWebhook) -> u16 {
    let r = web
        .http
        .post(format!("{}/v1/payments/webhook", web.api))
        .header("x-pay-timestamp", &hook.0)
        .header("x-pay-signature", &hook.1)
        .header("content-type", "application/json")
        .body(hook.2.clone())
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// The same payment's webhook as the wallet re-sends it: a new event id, freshly signed.
fn redelivery(ca: &TestCa, hook: &HeldWebhook) -> HeldWebhook {
    let secret = std::fs::read(ca.config.data_dir.join("payment-webhook.secret")).unwrap();
    let mut body: Value = serde_json::from_str(&hook.2).unwrap();
    body["event_id"] = json!(format!("{}-again", body["event_id"].as_str().unwrap()));
    let body = body.to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = cloudca::providers::payment::sign_webhook(&secret, now, body.as_bytes());
    HeldWebhook(now.to_string(), signature, body)
}

/// What the payer's wallet app shows for a payment, e.g. `paid, refunded 0 of 40000 fen`.
async fn wallet(web: &Client<'_>, reference: &str) -> String {
    let page = web.http.get(format!("{}/sandbox/pay/{reference}", web.api)).send().await.unwrap();
    let html = page.text().await.unwrap();
    let start = html.find("<p id=\"status\">").map(|i| i + "<p id=\"status\">".len());
    let status = start.and_then(|s| html[s..].find("</p>").map(|e| html[s..s + e].to_string()));
    status.unwrap_or_else(|| panic!("no status on the pay page: {html}"))
}

fn paid(refunded: i64) -> String {
    format!("paid, refunded {refunded} of {PRICE} fen")
}

/// The order as an officer sees it (unmasked, with `refunded_at`).
async fn officer_view(reviewer: &Client<'_>, id: &str) -> Value {
    reviewer.ok("GET", &format!("/v1/orders/{id}"), None, None).await
}

/// Review M5: the applicant shows the WeChat QR code and the payer pays it; before the
/// wallet's webhook lands, the applicant switches to Alipay. The webhook names the WeChat
/// intent, which is no longer the order's current one: it must still pay the order (before
/// the fix it found no order, 404 forever: money taken, order unpaid, no refund). The Alipay
/// code is closed at the wallet once the order is paid, so it cannot take a second payment.
#[tokio::test(flavor = "multi_thread")]
async fn a_payment_through_a_superseded_wallet_qr_is_not_lost() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let (id, token) = personal_signed(&web, "+8613900139001", "110101199003074338", "personal-cloud-1y").await;

    let wechat = show_qr(&web, &id, &token, "wechat").await;
    let in_flight = pay_held(&web, &wechat).await;
    let alipay = show_qr(&web, &id, &token, "alipay").await;
    assert_ne!(wechat, alipay);
    assert_eq!(deliver(&web, &in_flight).await, 200, "the webhook of the superseded WeChat intent is accepted");

    let v = wait_state(&web, &id, &token, "review").await;
    assert!(v["paid_at"].is_number(), "{v}");
    let v = officer_view(&reviewer, &id).await;
    assert_eq!(v["data"]["payment"]["provider_ref"], json!(wechat), "the order records the intent that paid: {v}");
    assert_eq!(count(&ca, "payment.superseded_accepted"), 1);
    assert_eq!(count(&ca, "payment.intent_created"), 2);
    assert_eq!(wallet(&web, &wechat).await, paid(0), "nothing to refund: it is the order's payment");
    assert!(wallet(&web, &alipay).await.starts_with("closed"), "the Alipay code was closed at the wallet");
    let r = web.http.post(format!("{}/sandbox/pay/{alipay}", web.api)).send().await.unwrap();
    assert_eq!(r.status(), 409, "the closed Alipay code takes no second payment");
    crate::ra::audit_intact(&ca);
}

/// Review M5, the second payment: the payer pays the WeChat code (its webhook in flight),
/// the applicant switches to Alipay and pays that too, then switches back to WeChat and pays
/// a third time. The order is paid once; the other two payments are refunded, each once,
/// however often their webhooks are delivered or re-sent. The order is then cancelled: its
/// own payment is refunded and `refunded_at` recorded; a payment landing after the
/// cancellation is refunded too.
#[tokio::test(flavor = "multi_thread")]
async fn a_payment_the_order_does_not_want_is_refunded_exactly_once() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let (id, token) = personal_signed(&web, "+8613900139002", "110101199003074338", "personal-cloud-1y").await;

    let first = show_qr(&web, &id, &token, "wechat").await;
    let late_after_cancel = pay_held(&web, &first).await;
    let second = show_qr(&web, &id, &token, "alipay").await;
    let late_after_paid = pay_held(&web, &second).await;
    let third = show_qr(&web, &id, &token, "wechat").await;
    web.pay(&format!("{}/sandbox/pay/{third}", web.api)).await;
    wait_state(&web, &id, &token, "review").await;

    // The order is paid (by the third code): the second payment is extra and goes back, once.
    assert_eq!(deliver(&web, &late_after_paid).await, 200);
    assert_eq!(wallet(&web, &second).await, paid(PRICE), "the second payment was refunded");
    for hook in [&late_after_paid, &redelivery(&ca, &late_after_paid)] {
        assert_eq!(deliver(&web, hook).await, 200, "a replay or a re-sent webhook is answered");
    }
    assert_eq!(wallet(&web, &second).await, paid(PRICE), "and refunds nothing more");
    assert_eq!(count(&ca, "payment.refunded"), 1);
    let v = officer_view(&reviewer, &id).await;
    assert_eq!((v["state"].as_str(), v["refunded_at"].is_null()), (Some("review"), true), "{v}");

    // The applicant cancels: the order's own payment goes back and the order says so.
    web.ok("POST", &format!("/v1/ra/orders/{id}/cancel"), Some(&token), Some(json!({}))).await;
    let v = officer_view(&reviewer, &id).await;
    assert_eq!(v["state"], "cancelled");
    assert!(v["refunded_at"].is_string(), "{v}");
    assert_eq!(wallet(&web, &third).await, paid(PRICE));

    // The first payment lands after the cancellation: refunded, once.
    for hook in [&late_after_cancel, &late_after_cancel, &redelivery(&ca, &late_after_cancel)] {
        assert_eq!(deliver(&web, hook).await, 200);
    }
    assert_eq!(wallet(&web, &first).await, paid(PRICE));
    assert_eq!(count(&ca, "payment.refunded"), 3, "three payments, each refunded once");
    assert_eq!(count(&ca, "payment.refund_due"), 3);
    crate::ra::audit_intact(&ca);
}

/// Review L3: the applicant cancels a paid order while an officer approves it. Before the
/// fix the cancel refunded first and lost the compare-and-set afterwards: the money went back
/// and the order was approved (and carried out) anyway. Now the cancellation is recorded
/// first: whichever wins, an approved order keeps its payment and a cancelled one is
/// refunded once with `refunded_at`. Raced on a few orders so both orders of arrival occur.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_racing_an_approval_refunds_only_an_order_it_cancelled() {
    let ca = ra_ca().await;
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reviewer = Client::new(&ca, "reviewer");
    let people = [("+8613900139003", "110101199003074338"), ("+8613900139004", "11010519491231002X")];
    let mut refunds = 0;
    for (phone, id_number) in people {
        let (id, token) = personal_signed(&web, phone, id_number, "personal-cloud-1y").await;
        let reference = show_qr(&web, &id, &token, "alipay").await;
        web.pay(&format!("{}/sandbox/pay/{reference}", web.api)).await;
        wait_state(&web, &id, &token, "review").await;
        officer_view(&reviewer, &id).await; // both connections warm

        let (cancel_path, decision_path) = (format!("/v1/ra/orders/{id}/cancel"), format!("/v1/orders/{id}/decision"));
        let cancel = web.call("POST", &cancel_path, Some(&token), Some(json!({})));
        let approve = reviewer.call("POST", &decision_path, None, Some(json!({ "approve": true })));
        let ((cancelled, c), (approved, a)) = tokio::join!(cancel, approve);
        let v = officer_view(&reviewer, &id).await;
        let state = v["state"].as_str().unwrap().to_string();
        if state == "cancelled" {
            assert_eq!((cancelled, approved), (200, 409), "{c} {a}");
            assert!(v["refunded_at"].is_string(), "a cancelled order records its refund: {v}");
            assert_eq!(wallet(&web, &reference).await, paid(PRICE));
            refunds += 1;
        } else {
            assert!(matches!(state.as_str(), "approved" | "completed"), "{v}");
            assert_eq!(cancelled, 409, "the cancel lost the race: {c}");
            assert!(v["refunded_at"].is_null(), "{v}");
            assert_eq!(wallet(&web, &reference).await, paid(0), "an approved order keeps its payment");
        }
    }
    assert_eq!(count(&ca, "payment.refunded"), refunds);
    crate::ra::audit_intact(&ca);
}

/// Issuing the invoice again (重开发票) is for an order that paid an amount and asked for an
/// invoice. A paid order that asked for none and a free order are refused with a 409 problem
/// that says which (`no_invoice`), and nothing is invoiced or e-mailed. Before the fix the
/// re-issue turned the paid order's `invoice` on and issued one nobody asked for, and the free
/// order was told it was "not paid".
#[tokio::test(flavor = "multi_thread")]
async fn an_invoice_is_issued_again_only_for_an_order_that_paid_and_asked_for_one() {
    let mut ca = ra_ca().await;
    add_product(&mut ca, "personal-free-1y", "个人云证书（免费）", "personal-new", 0, "cloud");
    let _daemon = Daemon::start(&ca).await;
    let web = Client::new(&ca, "web-front");
    let reissue = |id: &str| format!("/v1/ra/orders/{id}/invoice/reissue");

    // Paid, no invoice asked for on the product step.
    let (paid_id, paid_token) =
        personal_signed(&web, "+8613900139005", "110101199003074338", "personal-cloud-1y").await;
    let reference = show_qr(&web, &paid_id, &paid_token, "alipay").await;
    web.pay(&format!("{}/sandbox/pay/{reference}", web.api)).await;
    wait_state(&web, &paid_id, &paid_token, "review").await;
    let (status, v) = web.call("POST", &reissue(&paid_id), Some(&paid_token), None).await;
    assert_eq!((status, v["no_invoice"].as_str()), (409, Some("not-requested")), "{v}");
    assert_eq!(v["title"], "no invoice was asked for with this order");

    // Free: submitted without a payment step.
    let phone = "+8613900139006";
    let (free_id, free_token) = web.create("personal-new").await;
    web.choose_method(&free_id, &free_token, "phone").await;
    let person = json!({ "name": "赵六", "id_number": "11010519491231002X", "phone": phone, "email": "z@example.com" });
    web.ok("POST", &format!("/v1/ra/orders/{free_id}/steps/person"), Some(&free_token), Some(person)).await;
    let product = json!({ "product": "personal-free-1y" });
    web.ok("POST", &format!("/v1/ra/orders/{free_id}/steps/product"), Some(&free_token), Some(product)).await;
    for kind in ["id-front", "id-back"] {
        assert_eq!(web.upload(&free_id, &free_token, kind, PDF).await.0, 201);
    }
    web.ok("POST", &format!("/v1/ra/orders/{free_id}/steps/materials"), Some(&free_token), Some(json!({}))).await;
    let code = web.code(&free_id, &free_token, "signature", phone, json!({})).await;
    let signature = json!({ "code": code, "accept_terms": true });
    let v =
        web.ok("POST", &format!("/v1/ra/orders/{free_id}/steps/signature"), Some(&free_token), Some(signature)).await;
    assert_eq!((v["state"].as_str(), v["amount_fen"].as_i64()), (Some("review"), Some(0)), "{v}");
    let (status, v) = web.call("POST", &reissue(&free_id), Some(&free_token), None).await;
    assert_eq!((status, v["no_invoice"].as_str()), (409, Some("free")), "{v}");
    assert_eq!(v["title"], "the order charged nothing: there is no amount to invoice");

    // Neither got an invoice, by number, by audit or by e-mail.
    for (id, token) in [(&paid_id, &paid_token), (&free_id, &free_token)] {
        let v = web.ok("GET", &format!("/v1/ra/orders/{id}"), Some(token), None).await;
        assert!(v["invoice_no"].is_null(), "{v}");
    }
    assert_eq!(count(&ca, "invoice.issued"), 0);
    let mail = std::fs::read_to_string(ca.config.data_dir.join("email-outbox.jsonl")).unwrap_or_default();
    assert!(!mail.contains("e-invoice"), "no invoice e-mailed: {mail}");
    crate::ra::audit_intact(&ca);
}
