use std::{cell::RefCell, marker::PhantomData, num::NonZeroU16, rc::Rc};

use ntex_error::{Failure, IntoFailure};
use ntex_service::{Ctx, Service, ServiceFactory, cfg::Cfg, pipeline::PipelineState};
use ntex_util::services::buffer::{BufferService, BufferServiceError};
use ntex_util::{HashSet, future::join, services::inflight::InFlightService};

use crate::error::{DecodeError, DispatcherError, MqttProtocolError, PayloadError, SpecViolation};
use crate::payload::{Payload, PayloadStatus};
use crate::{MqttServiceConfig, types::QoS};

use super::codec::{Decoded, Encoded, Packet};
use super::control::{
    ProtocolMessage, ProtocolMessageAck, ProtocolMessageKind, Subscribe, Unsubscribe,
};
use super::{Session, publish::Publish, shared::Ack, shared::MqttShared};

/// mqtt3 protocol dispatcher
pub(super) fn factory<AppSt, Sf, Ctl>(
    publish: Sf,
    control: Ctl,
) -> impl ServiceFactory<
    Session<AppSt>,
    Decoded,
    Res = Option<Encoded>,
    Error = DispatcherError<Sf::Error>,
    InitError = Failure,
>
where
    AppSt: 'static,
    Sf: ServiceFactory<Session<AppSt>, Publish, Res = ()> + 'static,
    Sf::InitError: IntoFailure,
    Ctl: ServiceFactory<Session<AppSt>, ProtocolMessage, Res = ProtocolMessageAck> + 'static,
    Ctl::Error: Into<Sf::Error>,
    Ctl::InitError: IntoFailure,
{
    ntex_service::factory(async move |st: &Session<AppSt>| {
        // create services
        let sink = st.sink().shared();
        let fut = join(publish.create(st), control.create(st));
        let (publish, control) = fut.await;

        let publish = publish.map_err(IntoFailure::fail)?;
        let control = control.map_err(IntoFailure::fail)?;

        let control = BufferService::new(
            16,
            // limit number of in-flight messages
            PipelineState::new(InFlightService::new(1, control)),
        )
        .map_err(|err| match err {
            BufferServiceError::Service(e) => DispatcherError::Service(e.into()),
            BufferServiceError::RequestCanceled => {
                DispatcherError::Protocol(MqttProtocolError::ReadTimeout)
            }
        });

        let cfg: Cfg<MqttServiceConfig> = st.cfg();
        Ok(Dispatcher::new(sink, publish, control, cfg))
    })
}

impl crate::inflight::SizedRequest for Decoded {
    fn size(&self) -> u32 {
        if let Decoded::Packet(_, size) | Decoded::Publish(_, _, size) = self {
            *size
        } else {
            0
        }
    }

    fn is_publish(&self) -> bool {
        matches!(self, Decoded::Publish(..))
    }

    fn is_chunk(&self) -> bool {
        matches!(self, Decoded::PayloadChunk(..))
    }
}

/// Mqtt protocol dispatcher
pub(crate) struct Dispatcher<St, T, C, E> {
    publish: T,
    inner: Inner<C>,
    cfg: Cfg<MqttServiceConfig>,
    st: PhantomData<(St, E)>,
}

struct Inner<C> {
    control: C,
    sink: Rc<MqttShared>,
    inflight: RefCell<HashSet<NonZeroU16>>,
    /// evgrid patch: inbound QoS 2 ids answered with PUBREC and awaiting PUBREL (a subset of
    /// `inflight`).
    qos2: RefCell<HashSet<NonZeroU16>>,
}

impl<St, T, C, E> Dispatcher<St, T, C, E>
where
    T: Service<St, Publish, Res = (), Error = E>,
    C: Service<St, ProtocolMessage, Res = ProtocolMessageAck, Error = DispatcherError<E>> + 'static,
{
    pub(crate) fn new(
        sink: Rc<MqttShared>,
        publish: T,
        control: C,
        cfg: Cfg<MqttServiceConfig>,
    ) -> Self {
        Self {
            cfg,
            publish,
            inner: Inner {
                sink,
                control,
                inflight: RefCell::new(HashSet::default()),
                qos2: RefCell::new(HashSet::default()),
            },
            st: PhantomData,
        }
    }

    fn tag(&self) -> &'static str {
        self.inner.sink.tag()
    }
}

impl<St, T, C, E> Service<St, Decoded> for Dispatcher<St, T, C, E>
where
    E: 'static,
    T: Service<St, Publish, Res = (), Error = E> + 'static,
    C: Service<St, ProtocolMessage, Res = ProtocolMessageAck, Error = DispatcherError<E>> + 'static,
{
    type Res = Option<Encoded>;
    type Error = DispatcherError<E>;

    #[inline]
    async fn ready(&self, ctx: Ctx<'_, Self, St>) -> Result<(), Self::Error> {
        let (res1, res2) = join(ctx.ready(&self.publish), ctx.ready(&self.inner.control)).await;
        if (res1.is_err() || res2.is_err())
            && let Some(pl) = self.inner.sink.payload.take()
        {
            self.inner.sink.payload.set(Some(pl.clone()));
            if pl.ready().await != PayloadStatus::Ready {
                self.inner.sink.force_close();
            }
        }

        res1.map_err(DispatcherError::Service)?;
        res2?;
        Ok(())
    }

    async fn shutdown(&self, ctx: Ctx<'_, Self, St>) {
        self.inner.sink.drop_payload(&PayloadError::Disconnected);
        self.inner.sink.close();

        ctx.shutdown(&self.inner.control).await;
        ctx.shutdown(&self.publish).await;
    }

    #[allow(clippy::too_many_lines)]
    async fn call(&self, req: Decoded, ctx: Ctx<'_, Self, St>) -> Result<Self::Res, Self::Error> {
        log::trace!("{}; Dispatch v3 packet: {:#?}", self.tag(), req);

        match req {
            Decoded::Publish(publish, payload, size) => {
                // evgrid patch: a byte scan; `contains([..])` decodes chars, for every PUBLISH.
                if publish.topic.as_bytes().iter().any(|&b| b == b'#' || b == b'+') {
                    return Err(SpecViolation::Pub_3_3_2_2.into());
                }

                let inner = &self.inner;
                let packet_id = publish.packet_id;

                // evgrid patch: until PUBREL, a QoS 2 PUBLISH with the id of one already
                // answered with PUBREC is a resend: it goes to the publish service again, to be
                // answered PUBREC and not delivered twice [MQTT-4.3.3-2]. 9.0.0 closed the
                // connection as a packet id in use.
                let resend = publish.qos == QoS::ExactlyOnce
                    && packet_id.is_some_and(|pid| inner.qos2.borrow().contains(&pid));

                // check for duplicated packet id
                if let Some(pid) = packet_id
                    && !resend
                    && !inner.inflight.borrow_mut().insert(pid)
                {
                    log::trace!(
                        "{}: Duplicated packet id for publish packet: {:?}",
                        self.tag(),
                        pid
                    );
                    return Err(SpecViolation::PacketId_2_2_1_3_Pub.into());
                }

                // check max allowed qos
                if publish.qos > self.cfg.max_qos {
                    log::trace!(
                        "{}: Max allowed QoS is violated, max {:?} provided {:?}",
                        self.tag(),
                        self.cfg.max_qos,
                        publish.qos
                    );
                    return Err(SpecViolation::Connack_3_2_2_11.into());
                }

                if inner.sink.is_closed()
                    && self
                        .cfg
                        .handle_qos_after_disconnect
                        .is_none_or(|max_qos| publish.qos > max_qos)
                {
                    return Ok(None);
                }

                let payload = if publish.payload_size == payload.len() as u32 {
                    Payload::from_bytes(payload)
                } else {
                    let (pl, sender) =
                        Payload::from_stream(payload, self.cfg.max_payload_buffer_size);
                    self.inner.sink.payload.set(Some(sender));
                    pl
                };

                // evgrid patch: the service is awaited here, not in a nested `async fn`. Each
                // nested future holds its own copy of the packet and is moved whole into its
                // parent, and this is the path every PUBLISH takes.
                let pkt = Publish::new(publish, payload, size);
                let qos2 = pkt.qos() == QoS::ExactlyOnce;
                if let Some(pid) = packet_id.filter(|_| qos2) {
                    inner.qos2.borrow_mut().insert(pid);
                }
                let res = ctx.call_nowait(&self.publish, pkt).await;
                publish_result(res, qos2, packet_id, inner)
            }
            Decoded::PayloadChunk(buf, eof) => {
                if let Some(pl) = self.inner.sink.payload.take() {
                    pl.feed_data(buf);
                    if eof {
                        pl.feed_eof();
                    } else {
                        self.inner.sink.payload.set(Some(pl));
                    }
                    Ok(None)
                } else {
                    Err(MqttProtocolError::Decode(DecodeError::UnexpectedPayload).into())
                }
            }
            Decoded::Packet(Packet::PublishAck { packet_id }, _) => {
                if let Err(e) = self.inner.sink.pkt_ack(Ack::Publish(packet_id)) {
                    Err(e.into())
                } else {
                    Ok(None)
                }
            }
            Decoded::Packet(Packet::PublishReceived { packet_id }, _) => {
                if let Err(e) = self.inner.sink.pkt_ack(Ack::Receive(packet_id)) {
                    Err(e.into())
                } else {
                    Ok(None)
                }
            }
            // evgrid patch: a PUBREL for an id this connection never saw goes to the control
            // service too (9.0.0 closed the connection). After a session resumes, the client
            // resends PUBREL for a QoS 2 PUBLISH an earlier connection received, and
            // [MQTT-4.3.3-11] says answer it with PUBCOMP.
            Decoded::Packet(Packet::PublishRelease { packet_id }, _) => {
                self.inner
                    .control(ProtocolMessage::pubrel(packet_id), ctx)
                    .await
            }
            Decoded::Packet(Packet::PublishComplete { packet_id }, _) => {
                if let Err(e) = self.inner.sink.pkt_ack(Ack::Complete(packet_id)) {
                    Err(e.into())
                } else {
                    Ok(None)
                }
            }
            Decoded::Packet(Packet::PingRequest, _) => {
                self.inner.control(ProtocolMessage::ping(), ctx).await
            }
            Decoded::Packet(
                Packet::Subscribe {
                    packet_id,
                    topic_filters,
                },
                size,
            ) => {
                if self.inner.sink.is_closed() {
                    Ok(None)
                } else if topic_filters
                    .iter()
                    .any(|(tf, _)| !crate::topic::is_valid(tf))
                {
                    Err(SpecViolation::Subs_4_7_1.into())
                } else if !self.inner.inflight.borrow_mut().insert(packet_id) {
                    log::trace!(
                        "{}: Duplicated packet id for subscribe packet: {:?}",
                        self.tag(),
                        packet_id
                    );
                    Err(SpecViolation::PacketId_2_2_1_3_Sub.into())
                } else {
                    self.inner
                        .control(
                            ProtocolMessage::subscribe(Subscribe::new(
                                packet_id,
                                size,
                                topic_filters,
                            )),
                            ctx,
                        )
                        .await
                }
            }
            Decoded::Packet(
                Packet::Unsubscribe {
                    packet_id,
                    topic_filters,
                },
                size,
            ) => {
                if self.inner.sink.is_closed() {
                    Ok(None)
                } else if topic_filters.iter().any(|tf| !crate::topic::is_valid(tf)) {
                    Err(SpecViolation::Subs_4_7_1.into())
                } else if !self.inner.inflight.borrow_mut().insert(packet_id) {
                    log::trace!(
                        "{}: Duplicated packet id for unsubscribe packet: {:?}",
                        self.tag(),
                        packet_id
                    );
                    Err(SpecViolation::PacketId_2_2_1_3_Unsub.into())
                } else {
                    self.inner
                        .control(
                            ProtocolMessage::unsubscribe(Unsubscribe::new(
                                packet_id,
                                size,
                                topic_filters,
                            )),
                            ctx,
                        )
                        .await
                }
            }
            Decoded::Packet(Packet::Disconnect, _) => {
                self.inner.sink.is_disconnect_sent();
                self.inner
                    .control(ProtocolMessage::remote_disconnect(), ctx)
                    .await
            }
            // evgrid patch: a second CONNECT [MQTT-3.1.0-2] and the packets only a server sends
            // (CONNACK, SUBACK, UNSUBACK, PINGRESP) are protocol errors; 9.0.0 ignored them.
            Decoded::Packet(pkt, _) => Err(MqttProtocolError::unexpected_packet(
                pkt.packet_type(),
                "packet a client must not send",
            )
            .into()),
        }
    }
}

/// Publish service response
fn publish_result<C, E>(
    res: Result<(), E>,
    qos2: bool,
    packet_id: Option<NonZeroU16>,
    inner: &Inner<C>,
) -> Result<Option<Encoded>, DispatcherError<E>> {
    match res {
        Ok(()) => {
            log::trace!(
                "{}: Publish result for packet {:?} is ready",
                inner.sink.tag(),
                packet_id
            );

            if let Some(packet_id) = packet_id {
                if qos2 {
                    Ok(Some(Encoded::Packet(Packet::PublishReceived { packet_id })))
                } else {
                    inner.inflight.borrow_mut().remove(&packet_id);
                    Ok(Some(Encoded::Packet(Packet::PublishAck { packet_id })))
                }
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(DispatcherError::Service(e)),
    }
}

impl<C> Inner<C> {
    // evgrid patch: the control call's future is boxed. It is the largest state of
    // `Dispatcher::call`'s future, and every PUBLISH built (and moved) a future of that size:
    // control packets are rare, PUBLISH is the hot path.
    async fn control<St, T, E>(
        &self,
        pkt: ProtocolMessage,
        ctx: Ctx<'_, Dispatcher<St, T, C, E>, St>,
    ) -> Result<Option<Encoded>, DispatcherError<E>>
    where
        C: Service<St, ProtocolMessage, Res = ProtocolMessageAck, Error = DispatcherError<E>>,
    {
        Box::pin(self.control_unboxed(pkt, ctx)).await
    }

    async fn control_unboxed<St, T, E>(
        &self,
        pkt: ProtocolMessage,
        ctx: Ctx<'_, Dispatcher<St, T, C, E>, St>,
    ) -> Result<Option<Encoded>, DispatcherError<E>>
    where
        C: Service<St, ProtocolMessage, Res = ProtocolMessageAck, Error = DispatcherError<E>>,
    {
        match ctx.call(&self.control, pkt).await {
            Ok(item) => {
                let packet = match item.result {
                    ProtocolMessageKind::Ping => Some(Encoded::Packet(Packet::PingResponse)),
                    ProtocolMessageKind::Subscribe(res) => {
                        self.inflight.borrow_mut().remove(&res.packet_id);
                        Some(Encoded::Packet(Packet::SubscribeAck {
                            status: res.codes,
                            packet_id: res.packet_id,
                        }))
                    }
                    ProtocolMessageKind::Unsubscribe(res) => {
                        self.inflight.borrow_mut().remove(&res.packet_id);
                        Some(Encoded::Packet(Packet::UnsubscribeAck {
                            packet_id: res.packet_id,
                        }))
                    }
                    ProtocolMessageKind::Disconnect => {
                        self.sink.drop_payload(&PayloadError::Service);
                        self.sink.close();
                        None
                    }
                    ProtocolMessageKind::Nothing => None,
                    ProtocolMessageKind::PublishRelease(packet_id) => {
                        self.inflight.borrow_mut().remove(&packet_id);
                        self.qos2.borrow_mut().remove(&packet_id);
                        Some(Encoded::Packet(Packet::PublishComplete { packet_id }))
                    }
                    ProtocolMessageKind::PublishAck(_) => unreachable!(),
                };
                Ok(packet)
            }
            Err(err) => {
                self.sink.drop_payload(&PayloadError::Service);
                self.sink.close();
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::Pin};

    use ntex_bytes::{ByteString, Bytes};
    use ntex_io::{Io, testing::IoTest};
    use ntex_service::{Pipeline, cfg::SharedCfg, fn_service};
    use ntex_util::{future::lazy, time::Seconds, time::sleep};

    use super::*;
    use crate::{error, v3::MqttSink, v3::codec};

    #[ntex::test]
    async fn test_dup_packet_id() {
        let cfg: SharedCfg = SharedCfg::new("DBG")
            .add(MqttServiceConfig::new().set_max_qos(QoS::AtLeastOnce))
            .into();

        let io = Io::new(IoTest::create().0, cfg.clone());
        let codec = codec::Codec::default();
        let shared = Rc::new(MqttShared::new(io.get_ref(), codec, false, Rc::default()));

        let disp = Pipeline::new(
            Session::new((), MqttSink::new(shared.clone()), SharedCfg::default()),
            Dispatcher::new(
                shared.clone(),
                fn_service(async |_| {
                    sleep(Seconds(10)).await;
                    Ok(())
                }),
                fn_service(async |msg: ProtocolMessage| Ok::<_, DispatcherError<()>>(msg.ack())),
                cfg.get(),
            ),
        );

        let mut f: Pin<Box<dyn Future<Output = Result<_, _>>>> =
            Box::pin(disp.call(Decoded::Publish(
                codec::Publish {
                    dup: false,
                    retain: false,
                    qos: QoS::AtLeastOnce,
                    topic: ByteString::new(),
                    packet_id: NonZeroU16::new(1),
                    payload_size: 0,
                },
                Bytes::new(),
                999,
            )));
        let _ = lazy(|cx| Pin::new(&mut f).poll(cx)).await;

        let f = Box::pin(disp.call(Decoded::Publish(
            codec::Publish {
                dup: false,
                retain: false,
                qos: QoS::AtLeastOnce,
                topic: ByteString::new(),
                packet_id: NonZeroU16::new(1),
                payload_size: 0,
            },
            Bytes::new(),
            999,
        )));

        let DispatcherError::Protocol(MqttProtocolError::ProtocolViolation(err)) =
            f.await.err().unwrap()
        else {
            panic!()
        };
        assert_eq!(
            err.inner,
            error::ViolationInner::Spec(error::SpecViolation::PacketId_2_2_1_3_Pub)
        );
    }

    #[ntex::test]
    async fn test_spec_violations() {
        let cfg: SharedCfg = SharedCfg::new("DBG")
            .add(MqttServiceConfig::new().set_max_qos(QoS::AtLeastOnce))
            .into();

        let io = Io::new(IoTest::create().0, cfg.clone());
        let codec = codec::Codec::default();
        let shared = Rc::new(MqttShared::new(io.get_ref(), codec, false, Rc::default()));

        let disp = Pipeline::new(
            Session::new((), MqttSink::new(shared.clone()), SharedCfg::default()),
            Dispatcher::new(
                shared.clone(),
                fn_service(async |_: Publish| Ok::<_, ()>(())),
                fn_service(async |msg: ProtocolMessage| Ok::<_, DispatcherError<()>>(msg.ack())),
                cfg.get(),
            ),
        );

        // unknown PublishAck
        let err = disp
            .call(Decoded::Packet(
                Packet::PublishAck {
                    packet_id: NonZeroU16::new(100).unwrap(),
                },
                999,
            ))
            .await
            .err()
            .unwrap();
        let DispatcherError::Protocol(MqttProtocolError::ProtocolViolation(err)) = err else {
            panic!()
        };
        let error::ViolationInner::Common { reason, .. } = err.inner else {
            panic!()
        };
        assert_eq!(
            reason,
            crate::v5::codec::DisconnectReasonCode::ProtocolError
        );

        // unknown PublishReceived
        let err = disp
            .call(Decoded::Packet(
                Packet::PublishReceived {
                    packet_id: NonZeroU16::new(100).unwrap(),
                },
                999,
            ))
            .await
            .err()
            .unwrap();
        let DispatcherError::Protocol(MqttProtocolError::ProtocolViolation(err)) = err else {
            panic!()
        };
        let error::ViolationInner::Common { reason, .. } = err.inner else {
            panic!()
        };
        assert_eq!(
            reason,
            crate::v5::codec::DisconnectReasonCode::ProtocolError
        );

        // unknown PublishRelease
        let err = disp
            .call(Decoded::Packet(
                Packet::PublishRelease {
                    packet_id: NonZeroU16::new(100).unwrap(),
                },
                999,
            ))
            .await
            .err()
            .unwrap();
        let DispatcherError::Protocol(MqttProtocolError::ProtocolViolation(err)) = err else {
            panic!()
        };
        let error::ViolationInner::UnexpectedPacket { packet_type, .. } = err.inner else {
            panic!()
        };
        assert_eq!(packet_type, 98);

        // unknown PublishComplete
        let err = disp
            .call(Decoded::Packet(
                Packet::PublishComplete {
                    packet_id: NonZeroU16::new(100).unwrap(),
                },
                999,
            ))
            .await
            .err()
            .unwrap();
        let DispatcherError::Protocol(MqttProtocolError::ProtocolViolation(err)) = err else {
            panic!()
        };
        let error::ViolationInner::Common { reason, .. } = err.inner else {
            panic!()
        };
        assert_eq!(
            reason,
            crate::v5::codec::DisconnectReasonCode::ProtocolError
        );

        // subscribe invalid topic
        let err = disp
            .call(Decoded::Packet(
                Packet::Subscribe {
                    packet_id: NonZeroU16::new(1).unwrap(),
                    topic_filters: vec![(ByteString::new(), QoS::AtLeastOnce)],
                },
                999,
            ))
            .await
            .err()
            .unwrap();
        let DispatcherError::Protocol(MqttProtocolError::ProtocolViolation(err)) = err else {
            panic!()
        };
        assert_eq!(
            err.inner,
            error::ViolationInner::Spec(error::SpecViolation::Subs_4_7_1)
        );

        // unsubscribe invalid topic
        let err = disp
            .call(Decoded::Packet(
                Packet::Unsubscribe {
                    packet_id: NonZeroU16::new(1).unwrap(),
                    topic_filters: vec![ByteString::new()],
                },
                999,
            ))
            .await
            .err()
            .unwrap();

        let DispatcherError::Protocol(MqttProtocolError::ProtocolViolation(err)) = err else {
            panic!()
        };
        assert_eq!(
            err.inner,
            error::ViolationInner::Spec(error::SpecViolation::Subs_4_7_1)
        );
    }
}
