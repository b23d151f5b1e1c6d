//! The format of every log line, text or JSON. It is tracing-subscriber's own (`Full` and `Json`),
//! written again here for one reason: a request's context lives in a task-local
//! ([`super::request`]), not in a span, and goes where the span's fields went, so that the lines
//! read as before. Text: `<time> <LEVEL> request{request_id=.. method=.. route=.. client_ip=..
//! user=..}: <target>: <message> <fields>`; JSON: `timestamp`, `level`, `fields`, `target`, and the
//! request's fields under `span` (and `spans`, root first), as tracing-subscriber writes a span's.
//! Event fields are still formatted by tracing-subscriber's field formatter (text) and
//! tracing-serde (JSON); spans other than the request's (dependencies', at `debug`) too.

use std::fmt;
use std::io;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer as _};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_serde::fields::AsMap as _;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::request::{self, RequestContext};
use crate::clock::{Clock as _, SystemClock};

/// The line format of `log.format`. Install it with `tracing_subscriber::fmt().event_format(..)`;
/// `Json` needs the JSON field formatter as well (`.json()` first), as for tracing-subscriber's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Text,
    Json,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Records of the `log` crate carry their real target and level in fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        match self {
            Self::Text => text(ctx, writer, event, meta),
            Self::Json => json(ctx, writer, event, meta),
        }
    }
}

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// The level, padded to five characters and coloured as tracing-subscriber colours it.
fn level(level: Level, ansi: bool) -> &'static str {
    match (level, ansi) {
        (Level::TRACE, false) => "TRACE",
        (Level::DEBUG, false) => "DEBUG",
        (Level::INFO, false) => " INFO",
        (Level::WARN, false) => " WARN",
        (Level::ERROR, false) => "ERROR",
        (Level::TRACE, true) => "\x1b[35mTRACE\x1b[0m",
        (Level::DEBUG, true) => "\x1b[34mDEBUG\x1b[0m",
        (Level::INFO, true) => "\x1b[32m INFO\x1b[0m",
        (Level::WARN, true) => "\x1b[33m WARN\x1b[0m",
        (Level::ERROR, true) => "\x1b[31mERROR\x1b[0m",
    }
}

/// `s`, in `style` when the writer takes colours.
fn styled(writer: &mut Writer<'_>, style: &str, s: &str) -> fmt::Result {
    if writer.has_ansi_escapes() {
        writer.write_str(style)?;
        writer.write_str(s)?;
        writer.write_str(RESET)
    } else {
        writer.write_str(s)
    }
}

fn timestamp() -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_micros(SystemClock.now())
}

fn text<S, N>(
    ctx: &FmtContext<'_, S, N>,
    mut writer: Writer<'_>,
    event: &Event<'_>,
    meta: &Metadata<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let ansi = writer.has_ansi_escapes();
    if ansi {
        write!(writer, "{DIM}{}{RESET} ", timestamp())?;
    } else {
        write!(writer, "{} ", timestamp())?;
    }
    writer.write_str(level(*meta.level(), ansi))?;
    writer.write_char(' ')?;
    let mut spans = request::with_current(|request| text_request(&mut writer, request))
        .transpose()?
        .is_some();
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            styled(&mut writer, BOLD, span.metadata().name())?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>()
                && !fields.is_empty()
            {
                styled(&mut writer, BOLD, "{")?;
                writer.write_str(fields)?;
                styled(&mut writer, BOLD, "}")?;
            }
            styled(&mut writer, DIM, ":")?;
            spans = true;
        }
    }
    if spans {
        writer.write_char(' ')?;
    }
    styled(&mut writer, DIM, meta.target())?;
    styled(&mut writer, DIM, ":")?;
    writer.write_char(' ')?;
    ctx.format_fields(writer.by_ref(), event)?;
    writeln!(writer)
}

/// `request{request_id=.. method=.. route=.. client_ip=.. user=..}:`, as the span was.
fn text_request(writer: &mut Writer<'_>, request: &RequestContext) -> fmt::Result {
    styled(writer, BOLD, "request")?;
    styled(writer, BOLD, "{")?;
    writer.write_str("request_id=")?;
    writer.write_str(request.id())?;
    writer.write_str(" method=")?;
    writer.write_str(request.method())?;
    writer.write_str(" route=")?;
    writer.write_str(request.route())?;
    if let Some(ip) = request.client_ip() {
        write!(writer, " client_ip={ip}")?;
    }
    if let Some(user) = request.user() {
        writer.write_str(" user=")?;
        writer.write_str(user.as_str())?;
    }
    styled(writer, BOLD, "}")?;
    styled(writer, DIM, ":")
}

fn json<S, N>(
    ctx: &FmtContext<'_, S, N>,
    mut writer: Writer<'_>,
    event: &Event<'_>,
    meta: &Metadata<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let current = event
        .parent()
        .and_then(|id| ctx.span(id))
        .or_else(|| ctx.lookup_current());
    let written = request::with_current(|request| {
        json_object::<S, N>(&mut writer, event, meta, Some(request), current.as_ref())
    })
    .unwrap_or_else(|| json_object::<S, N>(&mut writer, event, meta, None, current.as_ref()));
    written.map_err(|_| fmt::Error)?;
    writeln!(writer)
}

fn json_object<S, N>(
    writer: &mut Writer<'_>,
    event: &Event<'_>,
    meta: &Metadata<'_>,
    request: Option<&RequestContext>,
    current: Option<&SpanRef<'_, S>>,
) -> Result<(), serde_json::Error>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let mut serializer = serde_json::Serializer::new(FmtToIo(writer));
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("timestamp", &format_args!("{}", timestamp()))?;
    map.serialize_entry("level", meta.level().as_str())?;
    map.serialize_entry("fields", &event.field_map())?;
    map.serialize_entry("target", meta.target())?;
    match (current, request) {
        (Some(span), _) => map.serialize_entry("span", &JsonSpan::<S, N>::new(span))?,
        (None, Some(request)) => map.serialize_entry("span", &JsonRequest(request))?,
        (None, None) => {}
    }
    if current.is_some() || request.is_some() {
        let spans = JsonSpans::<S, N> {
            request,
            current,
            fields: std::marker::PhantomData,
        };
        map.serialize_entry("spans", &spans)?;
    }
    SerializeMap::end(map)
}

/// The request's fields as tracing-subscriber writes a span's (in the order of serde_json's map),
/// with its `name`.
struct JsonRequest<'a>(&'a RequestContext);

impl Serialize for JsonRequest<'_> {
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let request = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(ip) = request.client_ip() {
            map.serialize_entry("client_ip", &format_args!("{ip}"))?;
        }
        map.serialize_entry("method", request.method())?;
        map.serialize_entry("request_id", request.id())?;
        map.serialize_entry("route", request.route())?;
        if let Some(user) = request.user() {
            map.serialize_entry("user", user.as_str())?;
        }
        map.serialize_entry("name", "request")?;
        SerializeMap::end(map)
    }
}

/// A span of a dependency (at `debug`): its fields, which the JSON field formatter stored as a
/// JSON object, and its name.
struct JsonSpan<'a, 'b, S: for<'l> LookupSpan<'l>, N> {
    span: &'b SpanRef<'a, S>,
    fields: std::marker::PhantomData<N>,
}

impl<'a, 'b, S: for<'l> LookupSpan<'l>, N> JsonSpan<'a, 'b, S, N> {
    fn new(span: &'b SpanRef<'a, S>) -> Self {
        Self {
            span,
            fields: std::marker::PhantomData,
        }
    }
}

impl<S, N> Serialize for JsonSpan<'_, '_, S, N>
where
    S: for<'l> LookupSpan<'l>,
    N: for<'l> FormatFields<'l> + 'static,
{
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut map = serializer.serialize_map(None)?;
        let extensions = self.span.extensions();
        let fields = extensions
            .get::<FormattedFields<N>>()
            .map_or("", |f| f.fields.as_str());
        if !fields.is_empty() {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(fields) {
                Ok(fields) => {
                    for (name, value) in &fields {
                        map.serialize_entry(name, value)?;
                    }
                }
                Err(e) => map.serialize_entry("field_error", &format_args!("{e}"))?,
            }
        }
        map.serialize_entry("name", self.span.metadata().name())?;
        SerializeMap::end(map)
    }
}

/// `spans`: the request first (it is the root of everything it runs), then the other spans from
/// the root to `current`.
struct JsonSpans<'a, 'b, S: for<'l> LookupSpan<'l>, N> {
    request: Option<&'b RequestContext>,
    current: Option<&'b SpanRef<'a, S>>,
    fields: std::marker::PhantomData<N>,
}

impl<S, N> Serialize for JsonSpans<'_, '_, S, N>
where
    S: for<'l> LookupSpan<'l>,
    N: for<'l> FormatFields<'l> + 'static,
{
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        if let Some(request) = self.request {
            seq.serialize_element(&JsonRequest(request))?;
        }
        if let Some(current) = self.current {
            for span in current.scope().from_root() {
                seq.serialize_element(&JsonSpan::<S, N>::new(&span))?;
            }
        }
        SerializeSeq::end(seq)
    }
}

/// serde_json writes to an `io::Write`, the line to a `fmt::Write`. serde_json writes whole
/// UTF-8 sequences (it splits strings only at the ASCII characters it escapes).
struct FmtToIo<'a, 'b>(&'a mut Writer<'b>);

impl io::Write for FmtToIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text =
            std::str::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.0.write_str(text).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "lines_tests.rs"]
mod tests;
