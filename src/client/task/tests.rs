use super::*;

fn router() -> Router {
    Router {
        pending: VecDeque::new(),
        queries: HashMap::new(),
        topics: HashMap::new(),
        hlc: Arc::new(Mutex::new(Hlc::new("test"))),
    }
}

fn op(router: &mut Router, id: &str) -> oneshot::Receiver<Result<(), ClientError>> {
    let (done, done_rx) = oneshot::channel();
    router.pending.push_back(Pending::Op(id.into(), done));
    done_rx
}

#[test]
fn an_op_ack_covers_its_op_and_every_op_sent_before_it() {
    let mut router = router();
    let mut first = op(&mut router, "a");
    let mut second = op(&mut router, "b");
    let mut third = op(&mut router, "c");

    router.receive(ServerMessage::OpAck {
        last_id: "b".into(),
    });

    assert!(matches!(first.try_recv(), Ok(Ok(()))));
    assert!(matches!(second.try_recv(), Ok(Ok(()))));
    assert!(third.try_recv().is_err());
    assert_eq!(router.pending.len(), 1);
}

#[test]
fn an_error_fails_the_oldest_waiting_request_and_a_query_resp_its_own() {
    let mut router = router();
    let (events, mut events_rx) = mpsc::unbounded_channel();
    router.pending.push_back(Pending::Query("q".into()));
    router.queries.insert("q".into(), events);
    let mut write = op(&mut router, "w");

    router.receive(ServerMessage::QueryResp {
        query_id: "q".into(),
        results: vec![("k".into(), rmpv::Value::from(1))],
    });
    router.receive(ServerMessage::Error {
        code: 403,
        message: "Partial batch failure: 1 ops denied".into(),
    });

    let results = vec![Entry {
        key: "k".into(),
        value: 1.into(),
    }];
    assert_eq!(
        events_rx.try_recv().unwrap().unwrap(),
        QueryEvent::Results(results)
    );
    assert!(matches!(
        write.try_recv(),
        Ok(Err(ClientError::Server { code: 403, .. }))
    ));
    assert!(router.pending.is_empty());
}

#[test]
fn a_topic_error_goes_to_the_subscriptions_not_to_a_waiting_write() {
    let mut router = router();
    let (messages, mut messages_rx) = mpsc::unbounded_channel();
    router.topics.insert("t".into(), messages);
    let mut write = op(&mut router, "w");

    router.receive(ServerMessage::Error {
        code: 403,
        message: "Access Denied for topic t".into(),
    });

    assert!(matches!(
        messages_rx.try_recv(),
        Ok(Err(ClientError::Server { code: 403, .. }))
    ));
    assert!(write.try_recv().is_err());
}
