//! Placeholder templates for URLs, query values, headers and bodies.
//!
//! A template is text with `{name}` placeholders (`{{` and `}}` write literal braces).
//! Names: `caller` (E.164), `caller_national` (10 NANP digits, else E.164), `zip`,
//! `state`, `area_code`, `service`, `campaign`, `source`, `call_id`, `dialed`,
//! `attr.NAME` (a call attribute), `param.NAME` (a buyer parameter from the config),
//! `base` (the base URL, URL templates only), and in accept templates `bid_id`, `price`
//! and `reply.NAME` (a value kept from the ping reply).
//!
//! Values are escaped for where they land: percent-encoded in URLs and query values,
//! form-encoded in form bodies, JSON-escaped in JSON bodies (the JSON body is built as a
//! structure, never by pasting text), and refused in headers when they hold control
//! characters.
//!
//! ## Absent values
//! `zip`, `service`, `call_id`, `base`, `param.NAME` and `price` always have a value.
//! The others may be absent from a call (no caller id, no campaign, no such attribute, a
//! reply value the buyer did not send). An absent value never renders as `""`:
//! - in the URL template (path and any query written into it) only placeholders that are
//!   sure to have a value may appear; anything else is refused when the config is loaded
//!   (use the `query` table instead). `caller`/`caller_national` are sure when the
//!   protocol sets `needs_caller_id`, `bid_id` when the ping response names a `bid_id`,
//!   `reply.NAME` because a bid whose reply lacks it is refused at the ping;
//! - a query parameter, form field or header whose value uses an absent placeholder is
//!   left out;
//! - a JSON string whose value uses an absent placeholder is left out of its object
//!   (`null` inside an array, which keeps the other elements' positions).

use std::collections::BTreeMap;
use std::fmt;

use callbid_core::{Bid, CallContext};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters left as they are in URL components: RFC 3986 unreserved.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Caller,
    CallerNational,
    Zip,
    State,
    AreaCode,
    Service,
    Campaign,
    Source,
    CallId,
    Dialed,
    Base,
    BidId,
    Price,
    Attr(String),
    Param(String),
    Reply(String),
}

/// Where a template may be used: which placeholders are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// A ping template.
    Ping,
    /// An accept template (`bid_id`, `price`, `reply.*` allowed).
    Accept,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A parsed template.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Template {
    source: String,
    parts: Vec<Part>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

/// The values placeholders take.
pub(crate) struct Vars<'a> {
    pub call: &'a CallContext,
    pub params: &'a BTreeMap<String, String>,
    pub base: &'a str,
    pub bid: Option<&'a Bid>,
    pub reply: Option<&'a BTreeMap<String, String>>,
}

impl Var {
    /// The placeholder as written.
    pub(crate) fn name(&self) -> String {
        match self {
            Var::Caller => "caller".into(),
            Var::CallerNational => "caller_national".into(),
            Var::Zip => "zip".into(),
            Var::State => "state".into(),
            Var::AreaCode => "area_code".into(),
            Var::Service => "service".into(),
            Var::Campaign => "campaign".into(),
            Var::Source => "source".into(),
            Var::CallId => "call_id".into(),
            Var::Dialed => "dialed".into(),
            Var::Base => "base".into(),
            Var::BidId => "bid_id".into(),
            Var::Price => "price".into(),
            Var::Attr(n) => format!("attr.{n}"),
            Var::Param(n) => format!("param.{n}"),
            Var::Reply(n) => format!("reply.{n}"),
        }
    }
}

impl Vars<'_> {
    fn value(&self, v: &Var) -> Option<String> {
        let c = self.call;
        match v {
            Var::Caller => c.caller.as_ref().map(|p| p.as_str().to_string()),
            Var::CallerNational => c
                .caller
                .as_ref()
                .map(|p| p.nanp_national().unwrap_or(p.as_str()).to_string()),
            Var::Zip => Some(c.zip.as_str().to_string()),
            Var::State => c.state().map(|s| s.as_str().to_string()),
            Var::AreaCode => c
                .caller
                .as_ref()
                .and_then(|p| p.area_code())
                .map(|a| a.to_string()),
            Var::Service => Some(c.service.as_str().to_string()),
            Var::Campaign => c.campaign.as_ref().map(|s| s.as_str().to_string()),
            Var::Source => c.source.as_ref().map(|s| s.as_str().to_string()),
            Var::CallId => Some(c.call_id.as_str().to_string()),
            Var::Dialed => c.dialed.as_ref().map(|p| p.as_str().to_string()),
            Var::Base => Some(self.base.trim_end_matches('/').to_string()),
            Var::BidId => self.bid.and_then(|b| b.bid_id.clone()),
            Var::Price => self.bid.map(|b| b.price.amount.to_string()),
            Var::Attr(n) => c.attributes.get(n).cloned(),
            Var::Param(n) => self.params.get(n).cloned(),
            Var::Reply(n) => self.reply.and_then(|r| r.get(n).cloned()),
        }
    }
}

impl Template {
    /// Parses `source`, checking every placeholder is known in `scope`.
    pub(crate) fn parse(source: &str, scope: Scope) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!("unclosed placeholder {{{name}"));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(parse_var(name.trim(), scope)?));
                }
                '}' => return Err("stray '}' (write '}}' for a literal brace)".into()),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The parameters (`param.NAME`) the template uses.
    pub(crate) fn params(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(Var::Param(n)) => Some(n.as_str()),
            _ => None,
        })
    }

    /// The placeholders the template uses.
    pub(crate) fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Lit(_) => None,
        })
    }

    /// Renders for a URL: values percent-encoded, except `{base}`. An absent value is an
    /// error naming the placeholder (the loader only lets placeholders that always have
    /// a value into URL templates, so this is a last line of defence).
    pub(crate) fn render_url(&self, vars: &Vars<'_>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Var(v) => {
                    let val = vars.value(v).ok_or_else(|| {
                        format!(
                            "URL template {:?}: {{{}}} has no value for this call",
                            self.source,
                            v.name()
                        )
                    })?;
                    if *v == Var::Base {
                        out.push_str(&val);
                    } else {
                        out.extend(utf8_percent_encode(&val, COMPONENT));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Renders a value that is escaped later by its container (query pair, form pair,
    /// header, JSON string). `None` when any placeholder it uses has no value: the
    /// field is then left out rather than sent with an empty piece.
    pub(crate) fn render_value(&self, vars: &Vars<'_>) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Var(v) => out.push_str(&vars.value(v)?),
            }
        }
        Some(out)
    }
}

fn parse_var(name: &str, scope: Scope) -> Result<Var, String> {
    let accept_only = |v: Var| -> Result<Var, String> {
        if scope == Scope::Accept {
            Ok(v)
        } else {
            Err(format!(
                "placeholder {{{name}}} is only available in accept templates"
            ))
        }
    };
    let named = |prefix: &str| -> Option<String> {
        name.strip_prefix(prefix)
            .filter(|n| {
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
            .map(str::to_string)
    };
    Ok(match name {
        "caller" => Var::Caller,
        "caller_national" => Var::CallerNational,
        "zip" => Var::Zip,
        "state" => Var::State,
        "area_code" => Var::AreaCode,
        "service" => Var::Service,
        "campaign" => Var::Campaign,
        "source" => Var::Source,
        "call_id" => Var::CallId,
        "dialed" => Var::Dialed,
        "base" => Var::Base,
        "bid_id" => accept_only(Var::BidId)?,
        "price" => accept_only(Var::Price)?,
        _ => {
            if let Some(n) = named("attr.") {
                Var::Attr(n)
            } else if let Some(n) = named("param.") {
                Var::Param(n)
            } else if let Some(n) = named("reply.") {
                accept_only(Var::Reply(n))?
            } else {
                return Err(format!(
                    "unknown placeholder {{{name}}} (known: caller, caller_national, zip, state, area_code, service, campaign, source, call_id, dialed, base, attr.NAME, param.NAME; in accept: bid_id, price, reply.NAME)"
                ));
            }
        }
    })
}

/// A JSON body template: a structure whose string leaves are templates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonTemplate {
    #[cfg_attr(not(test), allow(dead_code))]
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Text(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Builds from a TOML value (tables become objects, strings templates).
    pub(crate) fn from_toml(v: &toml::Value, scope: Scope, path: &str) -> Result<Self, String> {
        Ok(match v {
            toml::Value::String(s) => {
                JsonTemplate::Text(Template::parse(s, scope).map_err(|e| format!("{path}: {e}"))?)
            }
            toml::Value::Integer(i) => JsonTemplate::Number((*i).into()),
            toml::Value::Float(f) => JsonTemplate::Number(
                serde_json::Number::from_f64(*f)
                    .ok_or_else(|| format!("{path}: {f} is not a finite number"))?,
            ),
            toml::Value::Boolean(b) => JsonTemplate::Bool(*b),
            toml::Value::Datetime(d) => JsonTemplate::Text(Template::parse(&d.to_string(), scope)?),
            toml::Value::Array(a) => JsonTemplate::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| Self::from_toml(x, scope, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(t) => JsonTemplate::Object(
                t.iter()
                    .map(|(k, x)| {
                        Ok((
                            k.clone(),
                            Self::from_toml(x, scope, &format!("{path}.{k}"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// Builds from a JSON value.
    #[cfg(test)]
    pub(crate) fn from_json(
        v: &serde_json::Value,
        scope: Scope,
        path: &str,
    ) -> Result<Self, String> {
        Ok(match v {
            serde_json::Value::Null => JsonTemplate::Null,
            serde_json::Value::Bool(b) => JsonTemplate::Bool(*b),
            serde_json::Value::Number(n) => JsonTemplate::Number(n.clone()),
            serde_json::Value::String(s) => {
                JsonTemplate::Text(Template::parse(s, scope).map_err(|e| format!("{path}: {e}"))?)
            }
            serde_json::Value::Array(a) => JsonTemplate::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| Self::from_json(x, scope, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(o) => JsonTemplate::Object(
                o.iter()
                    .map(|(k, x)| {
                        Ok((
                            k.clone(),
                            Self::from_json(x, scope, &format!("{path}.{k}"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// Every template inside.
    pub(crate) fn templates(&self) -> Vec<&Template> {
        match self {
            JsonTemplate::Text(t) => vec![t],
            JsonTemplate::Array(a) => a.iter().flat_map(|x| x.templates()).collect(),
            JsonTemplate::Object(o) => o.iter().flat_map(|(_, x)| x.templates()).collect(),
            _ => Vec::new(),
        }
    }

    /// Renders to JSON; a string using an absent placeholder is left out of its object
    /// (`null` in an array).
    pub(crate) fn render(&self, vars: &Vars<'_>) -> serde_json::Value {
        use serde_json::Value;
        match self {
            JsonTemplate::Null => Value::Null,
            JsonTemplate::Bool(b) => Value::Bool(*b),
            JsonTemplate::Number(n) => Value::Number(n.clone()),
            JsonTemplate::Text(t) => t
                .render_value(vars)
                .map(Value::String)
                .unwrap_or(Value::Null),
            JsonTemplate::Array(a) => Value::Array(a.iter().map(|x| x.render(vars)).collect()),
            JsonTemplate::Object(o) => {
                let mut m = serde_json::Map::new();
                for (k, x) in o {
                    if let JsonTemplate::Text(t) = x {
                        match t.render_value(vars) {
                            Some(s) => {
                                m.insert(k.clone(), Value::String(s));
                            }
                            None => continue,
                        }
                    } else {
                        m.insert(k.clone(), x.render(vars));
                    }
                }
                Value::Object(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbid_core::{CallId, ServiceType};
    use chrono::TimeZone;

    fn call() -> CallContext {
        CallContext::new(
            CallId::new("CA1").unwrap(),
            "78701".parse().unwrap(),
            ServiceType::new("plumbing").unwrap(),
            chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        )
        .with_caller("+15125550123".parse().unwrap())
        .with_attribute("note", "a&b=c \"quoted\"\\ /?#\n")
    }

    #[test]
    fn escaping_per_context() {
        let params = BTreeMap::from([("id".to_string(), "x/y z".to_string())]);
        let c = call();
        let vars = Vars {
            call: &c,
            params: &params,
            base: "http://h/",
            bid: None,
            reply: None,
        };
        let url = Template::parse("{base}/v1/{param.id}.json?n={attr.note}", Scope::Ping).unwrap();
        assert_eq!(
            url.render_url(&vars).unwrap(),
            "http://h/v1/x%2Fy%20z.json?n=a%26b%3Dc%20%22quoted%22%5C%20%2F%3F%23%0A"
        );
        let json = JsonTemplate::from_json(
            &serde_json::json!({"note": "{attr.note}", "cid": "{caller}", "gone": "{campaign}", "mixed": "z={zip} c={campaign}"}),
            Scope::Ping,
            "body",
        )
        .unwrap();
        let v = json.render(&vars);
        assert_eq!(v["note"], "a&b=c \"quoted\"\\ /?#\n");
        assert_eq!(v["cid"], "+15125550123");
        assert!(v.get("gone").is_none());
        // A value built from an absent piece is absent, not "z=78701 c=".
        assert!(v.get("mixed").is_none(), "{v}");
        let text = v.to_string();
        assert!(text.contains(r#"\"quoted\"\\ /?#\n"#), "{text}");
    }

    #[test]
    fn parse_errors() {
        assert!(Template::parse("{nope}", Scope::Ping).is_err());
        assert!(Template::parse("{bid_id}", Scope::Ping).is_err());
        assert!(Template::parse("{bid_id}", Scope::Accept).is_ok());
        assert!(Template::parse("{zip", Scope::Ping).is_err());
        assert!(Template::parse("a}b", Scope::Ping).is_err());
        assert!(Template::parse("{attr.}", Scope::Ping).is_err());
        let t = Template::parse("{{literal}} {zip}", Scope::Ping).unwrap();
        let c = call();
        let p = BTreeMap::new();
        let vars = Vars {
            call: &c,
            params: &p,
            base: "",
            bid: None,
            reply: None,
        };
        assert_eq!(t.render_value(&vars).as_deref(), Some("{literal} 78701"));
    }

    #[test]
    fn absent_values_never_render_empty() {
        let c = call(); // no campaign, source, dialed or attr.gone
        let p = BTreeMap::new();
        let vars = Vars {
            call: &c,
            params: &p,
            base: "http://h",
            bid: None,
            reply: None,
        };
        // URL: an error naming the placeholder, never "http://h/c/".
        let e = Template::parse("{base}/c/{campaign}", Scope::Ping)
            .unwrap()
            .render_url(&vars)
            .unwrap_err();
        assert!(e.contains("{campaign}"), "{e}");
        // Values (query, form, headers): absent as a whole, even when mixed with text.
        for t in ["{source}", "sub-{source}", "{attr.gone}", "{zip}:{dialed}"] {
            let t = Template::parse(t, Scope::Ping).unwrap();
            assert_eq!(t.render_value(&vars), None, "{t:?}");
        }
        assert_eq!(
            Template::parse("sub-{zip}", Scope::Ping)
                .unwrap()
                .render_value(&vars)
                .as_deref(),
            Some("sub-78701")
        );
        // JSON: left out of objects, null in arrays; present values stay.
        let json = JsonTemplate::from_json(
            &serde_json::json!({"c": "{campaign}", "s": "src {source}", "list": ["{source}", "{zip}"], "z": "{zip}"}),
            Scope::Ping,
            "body",
        )
        .unwrap();
        assert_eq!(
            json.render(&vars),
            serde_json::json!({"list": [null, "78701"], "z": "78701"})
        );
    }
}
