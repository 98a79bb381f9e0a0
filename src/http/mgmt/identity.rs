//! The management API of a namespace's identity resources (docs/eventgrid.md §7.2–§7.5):
//! `/mgmt/namespaces/{ns}/{clients|caCertificates|clientGroups|topicSpaces|permissionBindings}`
//! with PUT, GET and DELETE on `/{name}` and GET on the collection.
//!
//! Owns translation only, with the helpers of [`super`]; the grid validates, stores and shows.
//! Must never return a client's password or its hash (the grid's documents never carry them),
//! nor read a request body before the admin key is checked.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use evgrid_actors::grid::resource::identity::Kind;

use super::{
    R, admin, delete_response, json_response, list_response, put_properties, put_response,
};
use crate::http::State;
use crate::http::error::ApiError;

/// The collections, case-insensitively (Azure's paths are).
const KINDS: &str = "{kind:(?i)clients|cacertificates|clientgroups|topicspaces|permissionbindings}";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        &format!("/mgmt/namespaces/{{ns}}/{KINDS}"),
        web::get().to(list),
    )
    .service(
        web::resource(format!("/mgmt/namespaces/{{ns}}/{KINDS}/{{name}}"))
            .route(web::put().to(put))
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    );
}

fn kind(s: &str) -> Result<Kind, ApiError> {
    Kind::from_segment(s).ok_or_else(|| ApiError::not_found(format!("No collection '{s}'.")))
}

async fn list(req: HttpRequest, p: web::Path<(String, String)>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(list_response(st.grid.list_identity(&p.0, kind(&p.1)?)?))
}

async fn put(
    req: HttpRequest,
    p: web::Path<(String, String, String)>,
    payload: web::Payload,
    st: web::Data<State>,
) -> R {
    let k = kind(&p.1)?;
    let props = put_properties(&req, payload, &st).await?;
    Ok(put_response(
        st.grid.put_identity(&p.0, k, &p.2, &props).await?,
    ))
}

async fn get(req: HttpRequest, p: web::Path<(String, String, String)>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(json_response(
        StatusCode::OK,
        &st.grid.get_identity(&p.0, kind(&p.1)?, &p.2)?,
    ))
}

async fn delete(
    req: HttpRequest,
    p: web::Path<(String, String, String)>,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    Ok(delete_response(
        st.grid.delete_identity(&p.0, kind(&p.1)?, &p.2).await?,
    ))
}
