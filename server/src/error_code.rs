//! Every machine-readable `code` an HTTP refusal may carry, with the one status it answers with.
//!
//! Clients branch on `code`, not on the English in `error`, so codes are stable: one list,
//! here, that `docs/api-errors.md` documents row for row (a unit test below reads the doc and
//! fails when the two differ). Refusals built outside `api::ApiError` (edge middlewares, upload
//! checks, run refusals with extra fields) take their code from here too.

use axum::http::StatusCode;

/// Declares [`ErrorCode`] and its list once, so that a code cannot exist without a status or be
/// left out of [`ErrorCode::ALL`].
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal, $status:ident;)*) => {
        /// A stable error code (see `docs/api-errors.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order `docs/api-errors.md` lists them (read by the test that
            /// compares the two).
            #[cfg_attr(not(test), allow(dead_code))]
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in `{"error", "code"}`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The status every refusal with this code answers with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    // The request itself: parsed before any handler runs.
    /// The body is not JSON (a syntax error, or empty where a body is required).
    InvalidJson = "invalid_json", BAD_REQUEST;
    /// The body's `Content-Type` is missing or not one this route takes.
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE;
    /// The body is JSON of the wrong shape: a field of the wrong type, missing or unknown.
    InvalidBody = "invalid_body", UNPROCESSABLE_ENTITY;
    /// A path parameter does not parse (not UTF-8, not a number where one is expected).
    InvalidPath = "invalid_path", BAD_REQUEST;
    /// The query string does not parse.
    InvalidQuery = "invalid_query", BAD_REQUEST;
    /// The body is larger than the route accepts.
    BodyTooLarge = "body_too_large", PAYLOAD_TOO_LARGE;
    /// The body could not be read: it stalled past the idle timeout or the connection broke.
    BodyUnreadable = "body_unreadable", BAD_REQUEST;
    /// The route exists, not with this method; `Allow` lists the methods it has.
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED;
    /// No API route has this path.
    RouteNotFound = "route_not_found", NOT_FOUND;
    /// A room name that breaks the naming rule.
    InvalidRoomName = "invalid_room_name", BAD_REQUEST;
    /// A value the route refuses for a reason given in `error`.
    BadRequest = "bad_request", BAD_REQUEST;
    // Who is asking.
    Unauthorized = "unauthorized", UNAUTHORIZED;
    Forbidden = "forbidden", FORBIDDEN;
    RateLimited = "rate_limited", TOO_MANY_REQUESTS;
    QuotaExceeded = "quota_exceeded", TOO_MANY_REQUESTS;
    TooManyConnections = "too_many_connections", TOO_MANY_REQUESTS;
    // What they ask for.
    NotFound = "not_found", NOT_FOUND;
    RoomNotFound = "room_not_found", NOT_FOUND;
    Conflict = "conflict", CONFLICT;
    RoomTaken = "room_taken", CONFLICT;
    // Teams.
    /// The change would leave the team without an owner.
    LastOwner = "last_owner", CONFLICT;
    /// The team's members and pending invitations reached its limit.
    TeamFull = "team_full", CONFLICT;
    /// The person is a member of the team already.
    AlreadyMember = "already_member", CONFLICT;
    /// The person has a pending invitation to the team already.
    AlreadyInvited = "already_invited", CONFLICT;
    /// The invitation was accepted, declined or revoked already.
    InvitationClosed = "invitation_closed", CONFLICT;
    /// The invitation's time to answer is over.
    InvitationExpired = "invitation_expired", GONE;
    // Team provider keys.
    /// Not one of the catalog's providers.
    UnknownProvider = "unknown_provider", BAD_REQUEST;
    /// Empty, too long, or with control or whitespace characters.
    InvalidProviderKey = "invalid_provider_key", BAD_REQUEST;
    /// The server has no key-encryption key, so it cannot store provider keys.
    KeyEncryptionNotConfigured = "key_encryption_not_configured", SERVICE_UNAVAILABLE;
    // Data rights.
    /// Deleting an account without a valid confirmation token of that account.
    DeletionNotConfirmed = "deletion_not_confirmed", FORBIDDEN;
    /// The account has runs still queued or running.
    RunsActive = "runs_active", CONFLICT;
    /// The caller's data export would pass the server's size limit.
    ExportTooLarge = "export_too_large", PAYLOAD_TOO_LARGE;
    // The agents' job queue.
    /// The worker's lease on the job ran out (another worker may hold it) or the job ended.
    LeaseLost = "lease_lost", CONFLICT;
    // Runs.
    EmptyGraph = "empty_graph", UNPROCESSABLE_ENTITY;
    UnknownTarget = "unknown_target", UNPROCESSABLE_ENTITY;
    InvalidGraph = "invalid_graph", UNPROCESSABLE_ENTITY;
    InsufficientCredits = "insufficient_credits", PAYMENT_REQUIRED;
    /// A run in a team's workflow would take the member past the monthly spending limit an
    /// owner or admin set for them.
    SpendingLimitReached = "spending_limit_reached", PAYMENT_REQUIRED;
    /// The plan's queue is full; the body carries the position the run would have had.
    QueueFull = "queue_full", TOO_MANY_REQUESTS;
    /// Move to front of a run that is no longer queued.
    NotQueued = "not_queued", CONFLICT;
    /// A run that costs credits by a user whose account a fraud flag holds for staff review.
    AccountUnderReview = "account_under_review", FORBIDDEN;
    // Apps (App mode).
    /// Publishing refused: a bound of the form, or an input or output the workflow does not
    /// have; `field` names it.
    InvalidApp = "invalid_app", BAD_REQUEST;
    /// A runner's value the catalog refuses (as a run would), or a key the form does not have;
    /// `field` names the input.
    InvalidAppInput = "invalid_app_input", BAD_REQUEST;
    /// The published workflow itself does not validate any more: only republishing helps.
    AppNotRunnable = "app_not_runnable", UNPROCESSABLE_ENTITY;
    /// A batch over the bounds: more than 100 members (sets, or the sweeps' combinations) or
    /// more than 256 KiB of parameter sets.
    BatchTooLarge = "batch_too_large", UNPROCESSABLE_ENTITY;
    /// A batch whose sets name no node or parameter of the graph, with both `sets` and
    /// `sweeps`, or with neither.
    InvalidBatch = "invalid_batch", UNPROCESSABLE_ENTITY;
    // Graph edits.
    InvalidEdits = "invalid_edits", UNPROCESSABLE_ENTITY;
    EditConflict = "edit_conflict", CONFLICT;
    // Uploads and documents.
    InvalidImage = "invalid_image", UNPROCESSABLE_ENTITY;
    ImageTooLarge = "image_too_large", UNPROCESSABLE_ENTITY;
    StorageQuotaExceeded = "storage_quota_exceeded", PAYLOAD_TOO_LARGE;
    DocumentTooLarge = "document_too_large", PAYLOAD_TOO_LARGE;
    RoomQuarantined = "room_quarantined", SERVICE_UNAVAILABLE;
    // The server.
    Unavailable = "unavailable", SERVICE_UNAVAILABLE;
    Internal = "internal", INTERNAL_SERVER_ERROR;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const DOC: &str = include_str!("../../docs/api-errors.md");

    /// `code → status` from the rows of the doc's table: `| \`code\` | 404 | … |`.
    fn documented() -> BTreeMap<String, u16> {
        DOC.lines()
            .filter_map(|line| {
                let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let status = cells.next()?.parse().ok()?;
                Some((code.to_owned(), status))
            })
            .collect()
    }

    #[test]
    fn the_doc_lists_every_code_with_its_status_and_nothing_else() {
        let documented = documented();
        let served: BTreeMap<String, u16> =
            ErrorCode::ALL.iter().map(|code| (code.as_str().to_owned(), code.status().as_u16())).collect();
        assert!(documented.len() > 20, "the table was not found in docs/api-errors.md");
        assert_eq!(documented, served, "docs/api-errors.md and ErrorCode differ");
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
        }
    }
}
