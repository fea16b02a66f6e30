//! `sinch-hooks demo`: the whole pipeline in this process on embedded defaults, fed signed
//! sample callbacks over real HTTP, each step shown as it happens. Exits 0 when every step did
//! what it should.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use pipeline::ledger::reference;
use pipeline::status::Status;
use pipeline::store::{MessageKey, MessageState, MessageStore};
use sinch::signature::unix_seconds;

use crate::CliError;
use crate::answer::Answer;
use crate::messages_client::{Auth, MessagesClient};
use crate::samples;
use crate::stack::{self, Options, Running, event_source::EventSourceConfig};
use crate::webhook_client::{http_client, post_signed};

const SECRET: &str = "demo-webhook-secret";
const CUSTOMER: &str = "46701234567";
const SMS_CUSTOMER: &str = "46709876543";
const OUR_NUMBER: &str = "46700000001";

/// Runs `demo`: the whole pipeline in this process, step by step.
pub fn run(stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    // The demo prints its own story; logs only for real problems (RUST_LOG overrides).
    crate::logging::init("error");
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    runtime.block_on(demo(stdout))
}

/// The story, step by step; every expectation that fails is reported and makes the exit 1.
struct Demo<'a> {
    out: &'a mut dyn Write,
    running: Running,
    client: reqwest::Client,
    /// The local messages API.
    messages: MessagesClient,
    url: String,
    failures: Vec<String>,
}

async fn demo(out: &mut dyn Write) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    // The demo runs on embedded defaults, whatever the environment says: only its secret.
    let env = pipeline::config::Env::from_lookup(|name: &str| {
        (name == receiver::config::SINCH_WEBHOOK_SECRET).then(|| SECRET.to_owned())
    });
    let options = Options::from_env(
        &env,
        EventSourceConfig {
            visibility_timeout: Duration::from_secs(5),
            ..EventSourceConfig::default()
        },
    )
    .map_err(|e| CliError::Usage(format!("{e}")))?;
    let running = stack::start(options)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let url = format!("http://{}/webhook", running.address);
    let messages = MessagesClient::new(&format!("http://{}", running.address), Auth::None, None, 4)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let mut demo = Demo {
        out,
        running,
        client: http_client(4),
        messages,
        url,
        failures: Vec::new(),
    };
    demo.say(&format!(
        "sinch-hooks demo: receiver, queue, worker, store and a Sinch simulator in this process\n\
         webhook {} (secret {SECRET:?}); Sinch API simulated",
        demo.url
    ))?;
    demo.story().await?;

    let status = demo.running.status().await;
    demo.say(&format!(
        "\nsummary: {} accepted, {} rejected, {} processed, {} duplicate(s), {} message(s) at Sinch, \
         {} in the dead-letter queue, in {:.2} s",
        status.accepted,
        status.rejected.values().sum::<u64>(),
        status.processed_total(),
        status.duplicates,
        status.replies_sent,
        status.dead_letter_queue,
        started.elapsed().as_secs_f64()
    ))?;
    demo.running.stop();
    if demo.failures.is_empty() {
        demo.say("demo finished: every step behaved as expected")?;
        Ok(ExitCode::SUCCESS)
    } else {
        demo.say(&format!("demo FAILED: {}", demo.failures.join("; ")))?;
        Ok(ExitCode::from(1))
    }
}

impl Demo<'_> {
    fn say(&mut self, line: &str) -> Result<(), CliError> {
        writeln!(self.out, "{line}")?;
        Ok(())
    }

    fn expect(&mut self, ok: bool, what: &str) -> Result<(), CliError> {
        if !ok {
            self.failures.push(what.to_owned());
            self.say(&format!("    ✗ expected {what}"))?;
        }
        Ok(())
    }

    /// Posts, prints the answer, waits for the worker, prints how long it took.
    async fn post(
        &mut self,
        title: &str,
        secret: &str,
        body: Vec<u8>,
        signed_at: Option<u64>,
    ) -> Result<Answer, CliError> {
        self.say(&format!("\n{title}"))?;
        let answer = post_signed(&self.client, &self.url, secret, body, signed_at).await;
        let reason = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|json| {
                json["reason"]
                    .as_str()
                    .or(json["status"].as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| answer.body.clone());
        self.say(&format!(
            "    receiver: {} {reason} in {:.1} ms",
            answer
                .status
                .map_or("no answer".to_owned(), |s| s.to_string()),
            answer.latency.as_secs_f64() * 1000.0
        ))?;
        let waited = Instant::now();
        let drained = self.running.drained(Duration::from_secs(10)).await;
        self.expect(drained, "the queue to drain")?;
        if answer.status == Some(200) {
            self.say(&format!(
                "    queued, then processed by the worker within {:.1} ms",
                waited.elapsed().as_secs_f64() * 1000.0
            ))?;
        }
        Ok(answer)
    }

    fn replies(&self) -> Vec<stack::simulator::SentMessage> {
        self.running
            .sent
            .as_ref()
            .map(|sent| sent.all())
            .unwrap_or_default()
    }

    /// Polls the store until `done` holds for message `key` (or 10 s pass).
    async fn wait_for_state(
        &self,
        key: &MessageKey,
        done: impl Fn(&MessageState) -> bool,
    ) -> Option<MessageState> {
        let store = self.running.store.clone()?;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let state = store.message_state(key).await.ok().flatten();
            if state.as_ref().is_some_and(&done) || Instant::now() > until {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn history(state: &MessageState) -> String {
        state
            .history
            .iter()
            .map(|h| h.status.as_str())
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    /// POSTs to the messages API; the status and the JSON answer (`replayed` added when it
    /// was).
    async fn send_message(&self, key: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let answer = self.messages.send(key, &body).await;
        let mut json = answer.json();
        if answer.headers.contains_key("idempotency-replayed") {
            json["replayed"] = true.into();
        }
        match answer.status {
            Some(status) => (status, json),
            None => (0, serde_json::json!({"error": answer.body})),
        }
    }

    /// GET /messages/{id}, until `done` holds (or 10 s pass).
    async fn follow(
        &self,
        id: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let view = self.messages.status(id).await.json();
            if done(&view) || Instant::now() > until {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn story(&mut self) -> Result<(), CliError> {
        // 1. WhatsApp HELP: answered on WhatsApp, and Sinch's reports for the reply follow.
        let help_id = samples::id();
        let help = samples::inbound(&help_id, "WHATSAPP", CUSTOMER, "HELP");
        let answer = self
            .post(
                "[1] inbound WhatsApp message \"HELP\" from +46 70 123 45 67",
                SECRET,
                help.clone(),
                None,
            )
            .await?;
        self.expect(answer.status == Some(200), "200 accepted")?;
        let replies = self.replies();
        match replies.first() {
            Some(reply) => {
                let line = format!(
                    "    reply sent on {} to {} (Sinch message {}): {:?}",
                    reply.channel, reply.to, reply.id, reply.text
                );
                self.say(&line)?;
            }
            None => self.expect(false, "a reply on WhatsApp")?,
        }
        self.expect(
            replies.len() == 1 && replies[0].channel == "WHATSAPP" && replies[0].to == CUSTOMER,
            "one reply, on WhatsApp, to the sender",
        )?;
        let reply_reference = replies
            .first()
            .map(|r| r.reference.clone())
            .unwrap_or_default();
        let reply_id = reference::ours(Some(&reply_reference))
            .unwrap_or_default()
            .to_owned();
        let state = self
            .wait_for_state(&MessageKey::Ours(reply_id.clone()), |s| {
                s.status == Status::Read
            })
            .await;
        match &state {
            Some(state) => {
                let line = format!(
                    "    Sinch reported on the reply {reply_id} (our id, sent as correlation_id): {}",
                    Self::history(state)
                );
                self.say(&line)?;
            }
            None => self.expect(false, "a status for the reply")?,
        }
        self.expect(
            state.is_some_and(|s| s.status == Status::Read && s.history.len() == 4),
            "the reply SENT, then QUEUED_ON_CHANNEL, DELIVERED and READ",
        )?;

        // 2. SMS HELP.
        let sms = samples::sms_inbound(&samples::id(), SMS_CUSTOMER, OUR_NUMBER, "help");
        self.post(
            "[2] inbound SMS \"help\" to our number +46 70 000 00 01",
            SECRET,
            sms,
            None,
        )
        .await?;
        let replies = self.replies();
        match replies.get(1) {
            Some(reply) => {
                let line = format!(
                    "    reply sent by SMS from {} to {}: {:?}",
                    reply.from, reply.to, reply.text
                );
                self.say(&line)?;
            }
            None => self.expect(false, "an SMS reply")?,
        }
        self.expect(
            replies
                .get(1)
                .is_some_and(|r| r.api == "sms" && r.from == OUR_NUMBER),
            "an SMS reply from the number that received the message",
        )?;
        let sms_reply = replies
            .get(1)
            .and_then(|r| reference::ours(Some(&r.reference)).map(str::to_owned))
            .unwrap_or_default();
        let state = self
            .wait_for_state(&MessageKey::Ours(sms_reply), |s| {
                s.status == Status::SmsDelivered
            })
            .await;
        if let Some(state) = &state {
            let line = format!("    its per-recipient reports: {}", Self::history(state));
            self.say(&line)?;
        }
        self.expect(
            state.is_some_and(|s| s.status == Status::SmsDelivered),
            "the SMS reply Delivered",
        )?;

        // 3. Reports out of order, for a message another system sent through the same app.
        let elsewhere = samples::id();
        for status in ["READ", "QUEUED_ON_CHANNEL", "DELIVERED"] {
            let body = samples::delivery(&elsewhere, status, "WHATSAPP", CUSTOMER, "");
            self.post(
                &format!(
                    "[3] delivery report {status} for a message sent elsewhere (out of order)"
                ),
                SECRET,
                body,
                None,
            )
            .await?;
        }
        let state = self
            .wait_for_state(&MessageKey::Conversation(elsewhere), |s| {
                s.history.len() == 3
            })
            .await;
        match &state {
            Some(state) => {
                let line = format!(
                    "    final status {} (history {}), a late QUEUED_ON_CHANNEL did not move it back",
                    state.status,
                    Self::history(state)
                );
                self.say(&line)?;
            }
            None => self.expect(false, "a status for the message")?,
        }
        self.expect(
            state.is_some_and(|s| s.status == Status::Read && s.history.len() == 3),
            "status READ with three reports in the history",
        )?;

        // 4. The first message again (Sinch retried it), freshly signed.
        self.post(
            "[4] the same WhatsApp \"HELP\" again, as a Sinch retry",
            SECRET,
            help,
            None,
        )
        .await?;
        let status = self.running.status().await;
        self.say(&format!(
            "    duplicate recognised by its message id: no second reply ({} replies in all)",
            self.replies().len()
        ))?;
        self.expect(
            status.duplicates == 1 && self.replies().len() == 2,
            "one duplicate and no new reply",
        )?;

        // 5. A send through the messages API, followed to READ.
        self.say("\n[5] POST /messages: a WhatsApp text to +46 70 123 45 67 (who wrote in [1])")?;
        let send = serde_json::json!({
            "to": format!("+{CUSTOMER}"), "channel": "WHATSAPP",
            "text": "Your order A-1042 has shipped.", "metadata": {"order": "A-1042"}
        });
        let (status, answer) = self.send_message("demo-order-A-1042", send.clone()).await;
        let id = answer["id"].as_str().unwrap_or_default().to_owned();
        self.say(&format!("    messages API: {status} {answer}"))?;
        self.expect(status == 202 && !id.is_empty(), "202 with our message id")?;
        let view = self.follow(&id, |v| v["status"] == "READ").await;
        let timeline: Vec<&str> = view["history"]
            .as_array()
            .map(|h| h.iter().filter_map(|e| e["status"].as_str()).collect())
            .unwrap_or_default();
        self.say(&format!(
            "    GET /messages/{id}: {} (history {}), Sinch message {}",
            view["status"],
            timeline.join(" -> "),
            view["sinch_message_id"]
        ))?;
        self.expect(
            view["status"] == "READ"
                && timeline.first() == Some(&"ACCEPTED")
                && view["metadata"]["order"] == "A-1042",
            "the send ACCEPTED, SENT, then READ, with its metadata",
        )?;
        let (status, again) = self.send_message("demo-order-A-1042", send).await;
        self.say(&format!(
            "    the same Idempotency-Key and body again: {status}, replayed, the same id: {}",
            again["id"] == answer["id"]
        ))?;
        self.expect(
            status == 202 && again["replayed"] == true && again["id"] == answer["id"],
            "the first answer replayed",
        )?;

        // 6. Free-form WhatsApp to someone who never wrote: refused before it costs anything.
        self.say("\n[6] POST /messages: a WhatsApp text to +46 70 555 55 55, who never wrote")?;
        let (status, answer) = self
            .send_message(
                "demo-cold",
                serde_json::json!({"to": "+46705555555", "channel": "WHATSAPP", "text": "Hello!"}),
            )
            .await;
        self.say(&format!(
            "    messages API: {status} {}",
            answer["error"]["code"]
        ))?;
        self.expect(
            status == 422 && answer["error"]["code"] == "whatsapp_window_closed",
            "422 whatsapp_window_closed",
        )?;
        let sent = self.replies().len();
        self.expect(sent == 3, "nothing sent to Sinch for the refused send")?;

        // 7. A forgery.
        let forged = samples::inbound(&samples::id(), "WHATSAPP", CUSTOMER, "STOP");
        let answer = self
            .post(
                "[7] a forged callback, signed with the wrong secret",
                "not-the-secret",
                forged,
                None,
            )
            .await?;
        self.say("    rejected before anything was queued")?;
        self.expect(answer.status == Some(401), "401 for a forgery")?;

        // 8. Authentic but an hour old.
        let stale = samples::delivery(&samples::id(), "FAILED", "WHATSAPP", CUSTOMER, "");
        let an_hour_ago = unix_seconds(SystemTime::now()) - 3600;
        let answer = self
            .post(
                "[8] an authentic callback signed an hour ago",
                SECRET,
                stale,
                Some(an_hour_ago),
            )
            .await?;
        let status = self.running.status().await;
        self.say(&format!(
            "    refused, and kept in the dead-letter queue ({} message(s) there) so nothing authentic is lost",
            status.dead_letter_queue
        ))?;
        self.expect(
            answer.status == Some(401) && status.dead_letter_queue == 1,
            "401 and the stale callback in the dead-letter queue",
        )?;

        // 9. Authentic garbage.
        let answer = self
            .post(
                "[9] an authentic callback that is not JSON",
                SECRET,
                b"{not json".to_vec(),
                None,
            )
            .await?;
        let status = self.running.status().await;
        self.say(&format!(
            "    accepted, then parked by the worker as poison: dead-letter queue holds {}",
            status.dead_letter_queue
        ))?;
        self.expect(
            answer.status == Some(200) && status.dead_letter_queue == 2,
            "the poison callback parked in the dead-letter queue",
        )?;

        // 10. What the team's systems heard: the events the committed changes made.
        self.say("\n[10] the events the story made (as EventBridge would get them; serve posts them with --events-to)")?;
        let expected = [
            (pipeline::events::MESSAGE_RECEIVED, 2),
            (pipeline::events::REPLY_SENT, 2),
            (pipeline::events::MESSAGE_STATUS_CHANGED, 6),
            (pipeline::events::CALLBACK_DEAD_LETTERED, 1),
        ];
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        let counts = loop {
            let events = self.running.events.last();
            let count = |kind: &str| events.iter().filter(|e| e.detail_type == kind).count();
            let done = expected
                .iter()
                .all(|(kind, at_least)| count(kind) >= *at_least);
            if done || tokio::time::Instant::now() > until {
                break expected.map(|(kind, at_least)| (kind, count(kind), at_least));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        for event in self.running.events.last().iter().rev() {
            let detail: serde_json::Value = serde_json::from_str(&event.detail).unwrap_or_default();
            let about = ["status", "text", "reason", "in_reply_to"]
                .iter()
                .filter_map(|field| detail[field].as_str().map(|v| format!("{field}={v}")))
                .collect::<Vec<_>>()
                .join(" ");
            self.say(&format!("    {:<24} {about}", event.detail_type))?;
        }
        for (kind, count, at_least) in counts {
            self.expect(
                count >= at_least,
                &format!("at least {at_least} \"{kind}\" event(s), got {count}"),
            )?;
        }
        Ok(())
    }
}
