//! Bearer tokens: how facectl (and workers without client certificates) prove who they are.
//! A token's value never appears in `Debug` output, logs or error messages.

use std::path::Path;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata key that carries `Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Tokens are visible ASCII without spaces, at least 16 characters (guessable ones are refused).
    pub fn new(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.len() < 16 {
            return Err(format!("a token must be at least 16 characters, got {}", value.len()));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token must be visible ASCII without spaces".into());
        }
        Ok(Self(value.to_string()))
    }

    /// Every token in a file, one per line (`#` comments and blank lines ignored), so a new token
    /// can be added before the old one is removed.
    pub fn read_all(path: &Path) -> Result<Vec<Self>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let tokens = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(i, line)| Self::new(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        if tokens.is_empty() {
            return Err(format!("{}: no token in the file", path.display()));
        }
        Ok(tokens)
    }

    /// The first token of a file (a client holds one).
    pub fn read(path: &Path) -> Result<Self, String> {
        Ok(Self::read_all(path)?.swap_remove(0))
    }

    /// Compares in time independent of where the first difference is.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The token a request presents, if any.
pub fn presented_token<T>(request: &Request<T>) -> Option<&str> {
    let value = request.metadata().get(AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// A client-side interceptor that attaches the token to every call (or nothing, without one).
#[derive(Clone, Default)]
pub struct AttachToken(Option<MetadataValue<Ascii>>);

impl AttachToken {
    pub fn new(token: Option<&Token>) -> Self {
        // Token::new admits visible ASCII only, which is always a valid header value.
        #[allow(clippy::expect_used)]
        Self(token.map(|t| format!("Bearer {}", t.0).parse().expect("tokens are visible ASCII")))
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert(AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_and_compared_exactly() {
        let token = Token::new("s3cret-token-0123456789").unwrap();
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        assert!(token.matches("s3cret-token-0123456789"));
        assert!(!token.matches("s3cret-token-012345678"));
        assert!(!token.matches("s3cret-token-0123456780"));
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in the middle").is_err());
    }

    #[test]
    fn an_attached_token_is_what_the_server_reads() {
        let token = Token::new("s3cret-token-0123456789").unwrap();
        let request = AttachToken::new(Some(&token)).call(Request::new(())).unwrap();
        assert_eq!(presented_token(&request), Some("s3cret-token-0123456789"));
        let request = AttachToken::new(None).call(Request::new(())).unwrap();
        assert_eq!(presented_token(&request), None);
    }

    #[test]
    fn token_files_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# rotation: new first\nnew-token-abcdefghijkl\nshort\n").unwrap();
        let error = Token::read_all(&path).unwrap_err();
        assert!(error.ends_with("tokens:3: a token must be at least 16 characters, got 5"), "{error}");
        assert!(!error.contains("new-token"), "the error does not echo secrets: {error}");
    }
}
