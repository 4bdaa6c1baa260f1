//! The agent's settings: one JSON object that monitor-deploy (or an admin's own tooling)
//! writes to the agent's stdin, and that the agent keeps in a 0600 file when it must outlive
//! the SSH session:
//! `{"name": "web1", "enc": "<hex>", "mac": "<hex>", "url": "http://10.0.0.5:8750", "host": "…"}`.
//!
//! Unknown fields are ignored; a missing or malformed field is a one-line error that names it
//! and never echoes key material.

use serde::{Deserialize, Serialize};

use crate::envelope::ClientKeys;

#[derive(Clone, Serialize, Deserialize)]
pub struct AgentSettings {
    pub name: String,
    pub enc: String,
    pub mac: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl std::fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSettings")
            .field("name", &self.name)
            .field("enc", &"***")
            .field("mac", &"***")
            .field("url", &self.url)
            .field("host", &self.host)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("settings are not a JSON object: {0}")]
    NotJson(String),
    #[error("settings field `{0}` is missing")]
    Missing(&'static str),
    #[error("settings field `{field}` must be {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
}

impl AgentSettings {
    /// Builds the settings monitor-deploy sends for one client.
    pub fn new(name: &str, keys: &ClientKeys, url: &str, host: Option<&str>) -> AgentSettings {
        AgentSettings {
            name: name.to_owned(),
            enc: hex::encode(keys.enc()),
            mac: hex::encode(keys.mac()),
            url: url.to_owned(),
            host: host.map(str::to_owned),
        }
    }

    /// Parses and checks settings JSON. Errors name the field, never its value.
    pub fn parse(json: &[u8]) -> Result<AgentSettings, SettingsError> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| SettingsError::NotJson(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| SettingsError::NotJson("not an object".into()))?;
        let text = |field: &'static str| -> Result<String, SettingsError> {
            match obj.get(field) {
                None | Some(serde_json::Value::Null) => Err(SettingsError::Missing(field)),
                Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(SettingsError::Invalid {
                    field,
                    expected: "a non-empty string",
                }),
            }
        };
        let settings = AgentSettings {
            name: text("name")?,
            enc: text("enc")?,
            mac: text("mac")?,
            url: text("url")?,
            host: match obj.get("host") {
                None | Some(serde_json::Value::Null) => None,
                Some(_) => Some(text("host")?),
            },
        };
        settings.keys()?;
        if !settings.url.starts_with("http://") {
            return Err(SettingsError::Invalid {
                field: "url",
                expected: "an http:// URL",
            });
        }
        Ok(settings)
    }

    /// The client keys the hex fields hold.
    pub fn keys(&self) -> Result<ClientKeys, SettingsError> {
        let enc = unhex::<16>(&self.enc).ok_or(SettingsError::Invalid {
            field: "enc",
            expected: "32 hexadecimal digits",
        })?;
        let mac = unhex::<32>(&self.mac).ok_or(SettingsError::Invalid {
            field: "mac",
            expected: "64 hexadecimal digits",
        })?;
        Ok(ClientKeys::from_bytes(enc, mac))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("settings always serialize")
    }
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masterkey::MasterKey;

    #[test]
    fn round_trip_and_keys() {
        let keys = ClientKeys::derive(&MasterKey::from_bytes([1; 32]), "web1");
        let s = AgentSettings::new("web1", &keys, "http://127.0.0.1:8750", None);
        let back = AgentSettings::parse(s.to_json().as_bytes()).unwrap();
        assert_eq!(back.keys().unwrap(), keys);
        assert!(!format!("{back:?}").contains(&back.enc));
    }

    #[test]
    fn errors_name_the_field_not_the_value() {
        let secret = "zz".repeat(16);
        let json = format!(r#"{{"name":"a","enc":"{secret}","mac":"00","url":"http://x"}}"#);
        let err = AgentSettings::parse(json.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`enc`") && !err.contains(&secret), "{err}");
        let err = AgentSettings::parse(br#"{"enc":"00","mac":"00","url":"http://x"}"#).unwrap_err();
        assert_eq!(err, SettingsError::Missing("name"));
        let ok = format!(
            r#"{{"name":"a","enc":"{}","mac":"{}","url":"http://x:1","extra":1}}"#,
            "ab".repeat(16),
            "cd".repeat(32)
        );
        AgentSettings::parse(ok.as_bytes()).unwrap();
    }
}
