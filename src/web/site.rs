//! Which channel a request is for. One web front serves the channels its `web.toml` names:
//! the default (`channel`) at `/…`, the URLs that always worked, and every served channel at
//! `/c/{channel}/…`; the handbook's `?channelId=` on any page sends the browser there. The
//! prefix is taken off before routing, so the pages are the same for every channel and build
//! their links with [`super::security::Ctx::url`]. A channel not in the file is not found:
//! the web front never opens orders for a channel it was not set up to serve.
//!
//! The channel's description (products, methods, terms, the customer-service phone every page
//! shows) comes from the daemon and is kept for [`TTL`], so a page costs no extra call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use super::client::Daemon;
use super::security::Ctx;
use super::Web;

/// How long a channel's description is used before it is asked for again (a SIGHUP reload on
/// the daemon shows on the pages within this time).
pub const TTL: Duration = Duration::from_secs(30);

/// The channel of this request, as the pages need it.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// The channel's name (orders are opened in it).
    pub channel: String,
    /// The prefix of this channel's pages: empty for the default channel at `/`, else
    /// `/c/{channel}`.
    pub base: String,
    /// The channel's customer-service phone, shown on every page (`service_phone` in the
    /// channel's file), when the daemon could be asked.
    pub phone: Option<String>,
}

/// Channel descriptions from the daemon, each kept for [`TTL`]; only served channels are
/// asked for, so the map stays as small as the configuration.
#[derive(Debug, Default)]
pub struct Channels {
    entries: Mutex<HashMap<String, (Instant, Value)>>,
}

impl Channels {
    /// The channel as the daemon describes it.
    pub async fn get(&self, daemon: &Daemon, name: &str) -> Result<Value, String> {
        if let Some(v) = self.fresh(name) {
            return Ok(v);
        }
        let path = format!("/v1/ra/channels/{}", super::client::segment(name).map_err(|e| e.to_string())?);
        let answer = daemon.ra(reqwest::Method::GET, &path, None, None).await.map_err(|e| e.to_string())?;
        if !answer.ok() {
            return Err(answer.title());
        }
        if let Ok(mut map) = self.entries.lock() {
            map.insert(name.to_string(), (Instant::now(), answer.body.clone()));
        }
        Ok(answer.body)
    }

    fn fresh(&self, name: &str) -> Option<Value> {
        let map = self.entries.lock().ok()?;
        map.get(name).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }
}

/// Picks the channel from the URL, takes `/c/{channel}` off the path, and puts the [`Site`]
/// on the request; an unserved channel is not found.
pub async fn select(State(web): State<Web>, ctx: Ctx, mut request: Request, next: Next) -> Response {
    let uri = request.uri().clone();
    let path = uri.path();
    let (channel, base, rest) = match path.strip_prefix("/c/") {
        Some(tail) => {
            let (name, rest) = tail.find('/').map_or((tail, "/"), |i| (&tail[..i], &tail[i..]));
            (name.to_string(), format!("/c/{name}"), rest.to_string())
        }
        None => {
            if let Some(wanted) = channel_id(uri.query()) {
                if !web.config.serves(&wanted) {
                    return super::pages::home::not_found(ctx).await;
                }
                return super::pages::redirect(&format!("/c/{wanted}{path}"), &[]);
            }
            (web.config.channel.clone(), String::new(), path.to_string())
        }
    };
    if !web.config.serves(&channel) {
        return super::pages::home::not_found(ctx).await;
    }
    let rewritten = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let Ok(rewritten) = rewritten.parse::<Uri>() else {
        return super::pages::respond(StatusCode::BAD_REQUEST, String::new());
    };
    *request.uri_mut() = rewritten;
    let phone = web.channels.get(&web.daemon, &channel).await.ok().and_then(|c| phone_of(&c));
    request.extensions_mut().insert(Site { channel, base, phone });
    next.run(request).await
}

/// The customer-service phone in a channel's description.
fn phone_of(channel: &Value) -> Option<String> {
    channel["service_phone"].as_str().filter(|p| !p.is_empty()).map(str::to_string)
}

/// `channelId` of a query string.
fn channel_id(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| pair.strip_prefix("channelId=")).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_id_is_read_from_the_query() {
        assert_eq!(channel_id(Some("a=1&channelId=bidding")).as_deref(), Some("bidding"));
        assert_eq!(channel_id(Some("a=1")), None);
        assert_eq!(channel_id(None), None);
    }
}
