//! HTTP publish to MQTT topics and the retained-message read API (docs/eventgrid.md §7.8):
//! `POST /namespaces/{ns}/mqtt/messages` and `GET /namespaces/{ns}/mqtt/retainedMessages/message`,
//! and the same paths without `/namespaces/{ns}` for the namespace the broker serves (Azure's
//! MQTT hostnames name the namespace, so its paths do not).
//!
//! Owns translation only: authenticate with the namespace's keys, check `api-version`, refuse a
//! namespace the broker does not serve, read the MQTT fields ([`parse`]) and the body within the
//! broker's maximum packet size, and hand the message to the bridge, which delivers it to MQTT
//! subscribers, stores or clears the retained message, and routes it. Must never answer 204
//! before the bridge said the message is queued for its subscribers (and routed, when the
//! namespace routes), nor read a body before the request is authenticated.

pub mod parse;

use std::borrow::Cow;
use std::time::{Instant, SystemTime};

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use evgrid_actors::bridge::{Client, RouteError};
use evgrid_actors::grid::Keys;
use evgrid_actors::metrics::HTTP;
use evgrid_actors::model::time::format_rfc3339_ms;
use ntex_bytes::ByteString;

use self::parse::{Headers, PUBLISH_API_VERSIONS, RETAINED_API_VERSIONS, Refused};
use super::State;
use super::auth::{self, Credential};
use super::error::ApiError;
use super::request::read_body;

/// The routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/namespaces/{ns}/mqtt/messages", web::post().to(publish_in))
        .route("/mqtt/messages", web::post().to(publish_served))
        .route(
            "/namespaces/{ns}/mqtt/retainedMessages/message",
            web::get().to(retained_in),
        )
        .route(
            "/mqtt/retainedMessages/message",
            web::get().to(retained_served),
        );
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> ApiError {
        match r {
            Refused::BadRequest(m) => ApiError::bad_request(m),
            Refused::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "Forbidden", m),
            Refused::TooLarge(m) => ApiError::too_large(m),
        }
    }
}

/// `POST /namespaces/{ns}/mqtt/messages`.
async fn publish_in(
    req: HttpRequest,
    ns: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    publish(req, Some(ns.into_inner()), payload, st).await
}

/// `POST /mqtt/messages`: the namespace the broker serves.
async fn publish_served(
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    publish(req, None, payload, st).await
}

/// `GET /namespaces/{ns}/mqtt/retainedMessages/message`.
async fn retained_in(
    req: HttpRequest,
    ns: web::Path<String>,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    retained(req, Some(ns.into_inner()), st).await
}

/// `GET /mqtt/retainedMessages/message`: the namespace the broker serves.
async fn retained_served(req: HttpRequest, st: web::Data<State>) -> Result<HttpResponse, ApiError> {
    retained(req, None, st).await
}

/// The namespace a request addresses, authenticated, its `api-version` one of `versions`, and
/// served by the broker; what it authenticated as.
fn admit(
    req: &HttpRequest,
    ns: Option<&str>,
    st: &State,
    versions: &[&str],
) -> Result<ByteString, ApiError> {
    let served = st.bridge.namespace();
    let ns = ns.unwrap_or(served);
    let keys = st.grid.keys(ns)?;
    let auth_name = authenticate(req, &keys, ns)?;
    parse::api_version(req.query_string(), versions)?;
    if !ns.eq_ignore_ascii_case(served) {
        return Err(ApiError::not_found(format!(
            "The MQTT broker of this server serves namespace '{served}' (mqtt.namespace), not \
             '{ns}'; use /namespaces/{served}/mqtt/… or /mqtt/…."
        )));
    }
    Ok(auth_name)
}

/// Checks the request's credential against the namespace's keys, as the namespace data plane
/// does (401 on any failure). The path without `/namespaces/{ns}` is checked as if it had it,
/// so a SAS token for the namespace, or for `https://<host>/mqtt/messages`, covers both forms.
///
/// Returns the authentication name routing enrichments see (docs/eventgrid.md §7.6): the kind
/// of credential, `SharedAccessKey` or `SharedAccessSignature`, since a namespace's keys and
/// SAS tokens name no client.
fn authenticate(req: &HttpRequest, keys: &Keys, ns: &str) -> Result<ByteString, ApiError> {
    let cred = auth::credential(req.headers(), req.query_string());
    let scope = format!("/namespaces/{ns}");
    let path = if req.path().starts_with("/namespaces/") {
        Cow::Borrowed(req.path())
    } else {
        Cow::Owned(format!("{scope}{}", req.path()))
    };
    auth::verify(
        &cred,
        &[&keys.key1, &keys.key2],
        &path,
        &scope,
        SystemTime::now(),
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    Ok(ByteString::from_static(match cred {
        Credential::Sas(_) => "SharedAccessSignature",
        _ => "SharedAccessKey",
    }))
}

/// The raw values of the headers that carry MQTT fields.
fn headers(h: &HeaderMap) -> Headers<'_> {
    let get = |name| h.get(name).map(|v| v.as_bytes());
    Headers {
        qos: get(parse::H_QOS),
        retain: get(parse::H_RETAIN),
        response_topic: get(parse::H_RESPONSE_TOPIC),
        correlation_data: get(parse::H_CORRELATION_DATA),
        user_properties: get(parse::H_USER_PROPERTIES),
        content_type: h.get(CONTENT_TYPE).map(|v| v.as_bytes()),
        message_expiry: get(parse::H_MESSAGE_EXPIRY),
        payload_format_indicator: get(parse::H_PFI),
    }
}

async fn publish(
    req: HttpRequest,
    ns: Option<String>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let auth_name = admit(&req, ns.as_deref(), &st, &PUBLISH_API_VERSIONS)?;
    let draft = parse::parse(
        req.query_string(),
        &headers(req.headers()),
        &st.mqtt,
        Instant::now(),
    )?;
    let body = read_body(&req, payload, st.mqtt.max_packet_size, st.body_timeout).await?;
    let msg = parse::with_payload(draft, body.bytes(), &st.mqtt)?;
    let client = Client {
        auth_name,
        session: ByteString::new(),
    };
    st.bridge.publish(msg, &client).await.map_err(route_error)?;
    drop(body);
    HTTP.mqtt_publish_ok.inc();
    Ok(HttpResponse::NoContent().finish())
}

/// The answer when the bridge could not take a message (docs/eventgrid.md §7.8: 500 on a routing
/// failure): subscribers got it, the route topic did not; or nobody got it while the broker stops.
fn route_error(e: RouteError) -> ApiError {
    match e {
        RouteError::Unavailable => ApiError::unavailable(
            "The MQTT broker is shutting down; the message was not delivered.",
        ),
        RouteError::NoRoute(why) | RouteError::Failed(why) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            format!(
                "The message was delivered to MQTT subscribers but could not be routed to the \
                 namespace's route topic: {why}"
            ),
        ),
        RouteError::Full(why) => ApiError::unavailable(format!(
            "The message was delivered to MQTT subscribers but not routed to the namespace's \
             route topic: the server is busy ({why}). Retry later."
        )),
        RouteError::TooLarge(why) => ApiError::too_large(format!(
            "The message was delivered to MQTT subscribers but not routed to the namespace's \
             route topic: {why}."
        )),
    }
}

async fn retained(
    req: HttpRequest,
    ns: Option<String>,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    admit(&req, ns.as_deref(), &st, &RETAINED_API_VERSIONS)?;
    let topic = parse::topic(req.query_string(), &st.mqtt)?;
    let found = st
        .bridge
        .broker()
        .retained(&topic)
        .await
        .map_err(|_| ApiError::unavailable("The MQTT broker is shutting down."))?;
    let Some(r) = found else {
        return Err(ApiError::not_found(format!(
            "There is no retained message on topic '{topic}'."
        )));
    };
    let m = &r.msg;
    let mut resp = HttpResponse::Ok();
    resp.insert_header(("x-ms-mqtt-topic", parse::encode_topic(&m.topic)))
        .insert_header(("x-ms-mqtt-qos", m.qos.to_string()))
        .insert_header(("x-ms-mqtt-size", m.payload.len().to_string()))
        .insert_header(("x-ms-mqtt-last-modified", format_rfc3339_ms(r.modified_ms)));
    if let Some(left) = parse::expiry_secs_left(m.expires_at, Instant::now()) {
        resp.insert_header(("x-ms-mqtt-expiry", left.to_string()));
    }
    if let Some(p) = &m.props {
        // The other properties in the publish API's own headers, so a read can be re-published.
        // A content type that is no valid header value (MQTT allows any UTF-8) is left out.
        if let Some(ct) = p
            .content_type
            .as_ref()
            .and_then(|ct| HeaderValue::from_str(ct).ok())
        {
            resp.insert_header((CONTENT_TYPE, ct));
        }
        if let Some(rt) = &p.response_topic {
            resp.insert_header((parse::H_RESPONSE_TOPIC, parse::encode_topic(rt)));
        }
        if let Some(cd) = &p.correlation_data {
            resp.insert_header((parse::H_CORRELATION_DATA, parse::encode_base64(cd)));
        }
        if !p.user_properties.is_empty() {
            resp.insert_header((
                parse::H_USER_PROPERTIES,
                parse::encode_user_properties(&p.user_properties),
            ));
        }
        if p.payload_utf8 {
            resp.insert_header((parse::H_PFI, "1"));
        }
    }
    Ok(resp.body(m.payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_errors_map_to_500_and_503() {
        let e = route_error(RouteError::NoRoute("topic 'telemetry' was deleted".into()));
        assert_eq!((e.status.as_u16(), e.code), (500, "InternalServerError"));
        assert!(
            e.message
                .ends_with("route topic: topic 'telemetry' was deleted")
        );
        let e = route_error(RouteError::Failed("store full".into()));
        assert_eq!((e.status.as_u16(), e.code), (500, "InternalServerError"));
        assert!(e.message.contains("delivered to MQTT subscribers"));
        let e = route_error(RouteError::Unavailable);
        assert_eq!((e.status.as_u16(), e.code), (503, "ServiceUnavailable"));
        let e = route_error(RouteError::Full("12 bytes free".into()));
        assert_eq!((e.status.as_u16(), e.code), (503, "ServiceUnavailable"));
        assert!(e.message.contains("12 bytes free"));
        let e = ApiError::from(Refused::TooLarge("big".into()));
        assert_eq!((e.status.as_u16(), e.code), (413, "RequestEntityTooLarge"));
        let e = ApiError::from(Refused::BadRequest("bad".into()));
        assert_eq!((e.status.as_u16(), e.message.as_str()), (400, "bad"));
    }
}
