//! Home (the flows this channel offers), help, about, language switch, stylesheet, 404.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use maud::{html, Markup};

use super::{channel, redirect, respond, trouble, FLOWS};
use crate::web::html::page;
use crate::web::i18n::Lang;
use crate::web::security::Ctx;
use crate::web::Web;

/// The stylesheet (one small file for every page).
const CSS: &str = include_str!("../static/app.css");

pub(in crate::web) async fn home(State(web): State<Web>, ctx: Ctx) -> Response {
    let l = ctx.lang;
    let channel = match channel(&web, &ctx).await {
        Ok(c) => c,
        Err(e) => return trouble(&ctx, StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let features: Vec<&str> =
        channel["features"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    let offered = FLOWS.iter().filter(|(flow, _)| {
        let methods_ok = match *flow {
            "org-new" => channel["methods"]["organisation"].as_array().is_some_and(|a| !a.is_empty()),
            "personal-new" => channel["methods"]["personal"].as_array().is_some_and(|a| !a.is_empty()),
            _ => true,
        };
        features.contains(&feature(flow)) && methods_ok
    });
    let cards = html! {
        ul.cards {
            @for &(flow, title) in offered {
                li { a.card id={ "flow-" (flow) } href=(ctx.url(&format!("/apply/{flow}"))) { (l.t(title)) } }
            }
            li { a.card href=(ctx.url("/orders")) { (l.t("Order management")) } }
            li { a.card href=(ctx.url("/seals")) { (l.t("Seal authorisation")) } }
        }
    };
    let title = channel["title"].as_str().unwrap_or("cloudca").to_string();
    respond(StatusCode::OK, page(&ctx, &title, cards, None))
}

/// The channel feature a flow belongs to.
fn feature(flow: &str) -> &str {
    match flow {
        "org-new" | "personal-new" => "new",
        "seal" => "seals",
        other => other,
    }
}

pub(in crate::web) async fn help(ctx: Ctx) -> Response {
    let body = match ctx.lang {
        Lang::Zh => help_zh(),
        Lang::En => help_en(),
    };
    respond(StatusCode::OK, page(&ctx, ctx.lang.t("Help"), body, None))
}

/// `GET /about` (handbook A2: 关于): who runs the service this channel's pages belong to,
/// and how to reach them. The channel file has no operator name or repository address, so the
/// text is fixed; the channel's title and customer-service phone fill it in.
pub(in crate::web) async fn about(State(web): State<Web>, ctx: Ctx) -> Response {
    // Without the daemon the page still says what the service is; only the title is missing.
    let title = channel(&web, &ctx).await.ok().and_then(|c| c["title"].as_str().map(str::to_string));
    let body = about_body(&ctx, title.as_deref());
    respond(StatusCode::OK, page(&ctx, ctx.lang.t("About"), body, None))
}

fn about_body(ctx: &Ctx, title: Option<&str>) -> Markup {
    let l = ctx.lang;
    html! {
        section #about {
            h2 { (l.t("The cloud certificate service")) }
            @if let Some(title) = title { p #about-channel { (l.t("This site")) ": " (title) } }
            p { (l.t("A certification authority (CA) issues the certificates applied for here. It checks who applies, keeps each certificate's key in its hardware security module and uses it only when the holder confirms with their PIN in the phone app.")) }
            p { (l.t("The certificate's holder signs documents on partner platforms by scanning a QR code with the app.")) }
            h2 { (l.t("Contact")) }
            @if let Some(phone) = &ctx.site.phone {
                p #about-phone { (l.t("Customer service")) ": " a href={ "tel:" (phone) } { (phone) } }
            }
            p { a #about-help href=(ctx.url("/help")) { (l.t("Help")) } " · " a href=(ctx.url("/orders")) { (l.t("Order management")) } }
        }
    }
}

pub(in crate::web) async fn language(ctx: Ctx, Path(code): Path<String>) -> Response {
    let lang = Lang::parse(&code);
    redirect(&ctx.url("/"), &[ctx.set_cookie("lang", lang.code(), 365 * 86400)])
}

pub(in crate::web) async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], CSS)
        .into_response()
}

pub(in crate::web) async fn not_found(ctx: Ctx) -> Response {
    trouble(&ctx, StatusCode::NOT_FOUND, "404")
}

fn help_zh() -> Markup {
    html! {
        section {
            h2 { "获取手机App" }
            p { "在应用商店搜索“云证书”，或向您的渠道索取下载链接。使用申请时填写的经办人（或本人）手机号码和短信验证码登录。" }
            h2 { "下载证书" }
            p {
                "申请审核通过后，登录App即可看到待领取的证书：完成身份核验，设置6至12位证书PIN码，"
                "密钥在CA的硬件密码模块中生成，证书随即签发。PIN码请牢记，连续输错5次将被锁定，可在App中或通过“PIN码解锁”业务解锁。"
            }
            h2 { "扫码签名" }
            p {
                "在业务平台（如电子招投标平台）选择云证书签名后，平台显示二维码；打开App扫描二维码，"
                "核对平台名称、签署内容和四位核对码，输入证书PIN码确认即可完成签名。二维码每秒变化，请勿截图转发。"
            }
            h2 { "证书续期、变更、吊销、补办与解锁" }
            p {
                "选择相应业务后，输入统一社会信用代码（机构）或身份证号码（个人），通过发送至在档经办人或法定代表人手机的验证码核验身份，"
                "即可看到名下的证书列表，在要办理的证书上点击相应业务；证书管理员或持有人手机收到的验证码确认后继续办理。"
                "续期时证书信息已预先填写，可修改，提交后重新核验。"
            }
            h2 { "办理须知" }
            p {
                "同一证件在同一渠道只能有一笔未完成的申请；未完成的订单可在“订单管理”中查询、继续或取消。"
                "身份核验未通过时，可修改信息后重试，或打印申请表改为线下办理。"
            }
        }
    }
}

fn help_en() -> Markup {
    html! {
        section {
            h2 { "Get the mobile app" }
            p {
                "Search for “cloud certificate” in the app store or ask your channel for the link. Log in with the "
                "agent's (or your own) phone number from the application and an SMS code."
            }
            h2 { "Download the certificate" }
            p {
                "Once the application is approved, the app shows the certificate waiting for you: check your identity "
                "and set a 6 to 12 digit certificate PIN; the key is generated in the CA's HSM and the certificate "
                "issued. Five wrong PINs in a row lock it; unlock in the app or with a PIN unlock order."
            }
            h2 { "Sign by scanning" }
            p {
                "When a platform (an e-bidding site, say) asks for a cloud-certificate signature it shows a QR code; "
                "scan it with the app, check the platform's name, what is signed and the four-digit code, and confirm "
                "with the PIN. The code changes every second: never forward a screenshot."
            }
            h2 { "Renewal, change, revocation, re-issue and unlock" }
            p {
                "Choose the service, enter the credit code (organisation) or ID number (person) and confirm with the "
                "code sent to an agent's or the legal representative's phone on file: your certificates are listed, each "
                "with the services it allows. The certificate's administrator or holder confirms with their own code. "
                "A renewal shows the certificate's data filled in, to correct if needed; it is checked again."
            }
            h2 { "Good to know" }
            p {
                "One open application per ID number or credit code and channel; unfinished orders can be found, "
                "continued or cancelled under Order management. If an identity check fails, correct the data and try "
                "again, or print the form and apply offline."
            }
        }
    }
}
