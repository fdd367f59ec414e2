//! Delivery records (`dlv/…`, see [`DeliveryRecord`]) read beside the messages they count.

use std::collections::HashMap;

use crate::error::Result;
use crate::mesh::model::{decode, DeliveryRecord, MessageRecord};
use crate::mesh::{keys, Engine};
use crate::store::{self, Compare, CompareOp, KeyValue, RangeRequest, Revision};

/// The delivery records of some messages, by delivery key, with their revisions.
#[derive(Default)]
pub(crate) struct Deliveries(HashMap<String, (DeliveryRecord, Revision)>);

impl Deliveries {
    /// The message stored at `kv`, with its delivery counts.
    pub fn message(&self, kv: &KeyValue) -> Result<MessageRecord> {
        let m: MessageRecord = decode(kv)?;
        Ok(m.with_deliveries(self.0.get(&keys::delivery(&kv.key)).map(|(d, _)| d)))
    }

    /// That the delivery record of the message at `message_key` is still the one read.
    pub fn unchanged(&self, message_key: &str) -> Compare {
        let key = keys::delivery(message_key);
        match self.0.get(&key) {
            Some((_, rev)) => Compare::mod_revision(key, CompareOp::Equal, *rev),
            None => Compare::absent(key),
        }
    }
}

impl Engine {
    /// The message stored at `key` with its delivery counts; `None` when there is none.
    pub(crate) async fn message_at(&self, key: &str) -> Result<Option<MessageRecord>> {
        let Some(kv) = store::get(&**self.store(), key).await? else { return Ok(None) };
        let delivery = store::get(&**self.store(), &keys::delivery(key)).await?;
        let delivery: Option<DeliveryRecord> = delivery.as_ref().map(decode).transpose()?;
        Ok(Some(decode::<MessageRecord>(&kv)?.with_deliveries(delivery.as_ref())))
    }

    /// The delivery records of `messages`, read from under `mailboxes` (a mailbox prefix, or a
    /// swarm's). `messages` is a prefix of `mailboxes` in key order when `more` says the read
    /// stopped early; then only the records up to its last key are read.
    pub(crate) async fn deliveries(&self, mailboxes: &str, messages: &[KeyValue], more: bool) -> Result<Deliveries> {
        if messages.is_empty() {
            return Ok(Deliveries::default());
        }
        let mut req = RangeRequest::prefix(keys::delivery(mailboxes));
        if let Some(last) = messages.iter().map(|kv| &kv.key).max().filter(|_| more) {
            req.end = Some(format!("{}\0", keys::delivery(last)));
        }
        let mut by_key = HashMap::new();
        for kv in self.store().range(req).await?.kvs {
            by_key.insert(kv.key.clone(), (decode(&kv)?, kv.mod_revision));
        }
        Ok(Deliveries(by_key))
    }
}
