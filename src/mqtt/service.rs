//! The publish service of both protocol versions, with read back-pressure.
//!
//! ntex-mqtt asks a service whether it is ready before it dispatches the next packet; a plain
//! async closure always is. This one is not while the connection has too many messages waiting
//! to be routed, so a flooding publisher is slowed by TCP instead of growing memory. The QoS 0
//! packets that never reach this service (`v3::fast_publish`, `v5::fast_publish`, taken ahead of
//! ntex-mqtt's service stack) check the same limit with `Conn::has_capacity` and are declined,
//! into this service's wait, when it is reached.

use std::future::Ready;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use ntex_error::Failure;
use ntex_service::{Ctx, Service, ServiceFactory};
use ntex_util::future::Either;

use super::EdgeError;
use super::conn::Conn;

/// A publish handler's answer: ready at once (QoS 0 with the payload in hand, which is most
/// PUBLISH packets), or a boxed future for the rest. ntex-mqtt builds and moves a dispatcher
/// future per packet whose size includes this one (440 B for v3, 728 B for v5 before); keeping it
/// small cut the broker's CPU per QoS 0 message by about 2.5 % (benches/README.md). Most of the
/// `memmove` in a fan-in profile is ntex-service's own boxed pipeline calls, not this.
pub(crate) type Reply<'a, T> =
    Either<Ready<Result<T, EdgeError>>, Pin<Box<dyn Future<Output = Result<T, EdgeError>> + 'a>>>;

/// One protocol version's publish handler.
pub(crate) trait Handler: 'static {
    type Sess: Clone + Deref<Target = Conn> + 'static;
    type Req;
    type Res;
    fn call(s: &Self::Sess, req: Self::Req) -> impl Future<Output = Result<Self::Res, EdgeError>>;
}

pub(crate) struct PublishFactory<H>(PhantomData<H>);

impl<H> PublishFactory<H> {
    pub fn new() -> Self {
        PublishFactory(PhantomData)
    }
}

impl<H: Handler> ServiceFactory<H::Sess, H::Req> for PublishFactory<H> {
    type Res = H::Res;
    type Error = EdgeError;
    type Service = PublishService<H>;
    type InitError = Failure;

    async fn create(&self, s: &H::Sess) -> Result<PublishService<H>, Failure> {
        Ok(PublishService(s.clone(), PhantomData))
    }
}

pub(crate) struct PublishService<H: Handler>(H::Sess, PhantomData<H>);

impl<H: Handler> Service<H::Sess, H::Req> for PublishService<H> {
    type Res = H::Res;
    type Error = EdgeError;

    async fn ready(&self, _: Ctx<'_, Self, H::Sess>) -> Result<(), EdgeError> {
        self.0.capacity().await;
        Ok(())
    }

    async fn call(&self, req: H::Req, _: Ctx<'_, Self, H::Sess>) -> Result<H::Res, EdgeError> {
        H::call(&self.0, req).await
    }
}
