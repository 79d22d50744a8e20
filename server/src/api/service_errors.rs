//! How the services' typed errors leave over HTTP: the status and `code` each one has always
//! had, with the error's own words as the message (internal causes go to the log only).

use super::ApiError;
use crate::room_registry::OpenRefused;
use crate::services::SignInRequired;
use crate::services::access::AccessError;
use crate::services::compose::ComposeError;
use crate::services::credits::CreditError;
use crate::services::documents::DocumentError;
use crate::services::jobs::JobError;
use crate::services::provider_keys::ProviderKeyError;
use crate::services::runs::RunError;
use crate::services::teams::TeamError;
use crate::services::versions::VersionError;
use crate::services::workflows::WorkflowError;

impl From<SignInRequired> for ApiError {
    fn from(error: SignInRequired) -> Self {
        ApiError::Unauthorized(error.to_string())
    }
}

impl From<OpenRefused> for ApiError {
    fn from(error: OpenRefused) -> Self {
        match error {
            OpenRefused::TooManyRooms(_) => ApiError::Unavailable(error.to_string()),
            OpenRefused::UserQuota(_) => ApiError::QuotaExceeded(error.to_string()),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::BadName(_) => ApiError::InvalidRoomName(error.to_string()),
            // The code a room nobody created answers with: a stranger cannot tell the two apart
            // (see `services::access`).
            AccessError::Hidden(_) => ApiError::RoomNotFound(error.to_string()),
            AccessError::Insufficient { .. } => ApiError::Forbidden(error.to_string()),
            AccessError::Auth(error) => error.into(),
        }
    }
}

impl From<WorkflowError> for ApiError {
    fn from(error: WorkflowError) -> Self {
        match error {
            WorkflowError::SignIn(error) => error.into(),
            WorkflowError::BadRoom(_) => ApiError::InvalidRoomName(error.to_string()),
            WorkflowError::NotFound(_) | WorkflowError::NotCollaborator(_) | WorkflowError::NoInvitation => {
                ApiError::NotFound(error.to_string())
            }
            WorkflowError::NotOwner | WorkflowError::TeamViewer => ApiError::Forbidden(error.to_string()),
            WorkflowError::TeamNotFound(_) => ApiError::NotFound(error.to_string()),
            WorkflowError::RoomTaken(_) => ApiError::RoomTaken(error.to_string()),
            WorkflowError::Store(error) => ApiError::Storage(error),
            WorkflowError::Auth(error) => error.into(),
            WorkflowError::Accounts(error) => error.into(),
        }
    }
}

impl From<TeamError> for ApiError {
    fn from(error: TeamError) -> Self {
        match error {
            TeamError::SignIn(error) => error.into(),
            TeamError::NotFound(_) => ApiError::NotFound(error.to_string()),
            TeamError::Forbidden(_) => ApiError::Forbidden(error.to_string()),
            TeamError::Accounts(error) => error.into(),
        }
    }
}

impl From<ProviderKeyError> for ApiError {
    fn from(error: ProviderKeyError) -> Self {
        match error {
            ProviderKeyError::Team(error) => error.into(),
            ProviderKeyError::UnknownProvider(_) => ApiError::UnknownProvider(error.to_string()),
            ProviderKeyError::InvalidKey(_) => ApiError::InvalidProviderKey(error.to_string()),
            ProviderKeyError::NotConfigured => ApiError::KeyEncryptionNotConfigured(error.to_string()),
            ProviderKeyError::NoKey(_) => ApiError::NotFound(error.to_string()),
            ProviderKeyError::Crypto(_) => ApiError::Internal(error.to_string()),
            ProviderKeyError::Accounts(error) => error.into(),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(error: RunError) -> Self {
        match error {
            RunError::NotFound(_) => ApiError::NotFound(error.to_string()),
            RunError::Forbidden(_) => ApiError::Forbidden(error.to_string()),
            RunError::Auth(error) => error.into(),
            RunError::Accounts(error) => error.into(),
        }
    }
}

impl From<ComposeError> for ApiError {
    fn from(error: ComposeError) -> Self {
        match error {
            ComposeError::Access(error) => error.into(),
            ComposeError::Plan(_) => ApiError::BadRequest(error.to_string()),
            ComposeError::Edit(error) => error.into(),
        }
    }
}

impl From<VersionError> for ApiError {
    fn from(error: VersionError) -> Self {
        match error {
            VersionError::Access(error) => error.into(),
            VersionError::NotFound { .. } => ApiError::NotFound(error.to_string()),
            VersionError::Open(error) => error.into(),
            VersionError::Unavailable | VersionError::BadVersion(_) => {
                ApiError::Unavailable(error.to_string())
            }
            VersionError::Store(error) => ApiError::Storage(error),
        }
    }
}

impl From<DocumentError> for ApiError {
    fn from(error: DocumentError) -> Self {
        match error {
            DocumentError::Access(error) => error.into(),
            DocumentError::EmptyUpdate | DocumentError::Refused(_) => ApiError::BadRequest(error.to_string()),
            DocumentError::Open(error) => error.into(),
            DocumentError::Quarantined => ApiError::Quarantined(error.to_string()),
            DocumentError::Unavailable => ApiError::Unavailable(error.to_string()),
            DocumentError::TooLarge(_) => ApiError::PayloadTooLarge(error.to_string()),
            DocumentError::Interrupted(_) | DocumentError::Internal(_) => {
                ApiError::Internal(error.to_string())
            }
        }
    }
}

impl From<CreditError> for ApiError {
    fn from(error: CreditError) -> Self {
        match error {
            CreditError::NoSuchUser(_) => ApiError::NotFound(error.to_string()),
            CreditError::UnknownCheckoutUser(_)
            | CreditError::UnknownCheckoutTeam(_)
            | CreditError::PayerNotTeamManager { .. } => ApiError::BadRequest(error.to_string()),
            CreditError::NoSuchTeam(_) => ApiError::NotFound(error.to_string()),
            CreditError::Accounts(error) => error.into(),
        }
    }
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        match error {
            JobError::SignInRequired => ApiError::Unauthorized(error.to_string()),
            JobError::NotStaff(_) => ApiError::Forbidden(error.to_string()),
            JobError::ScheduleNotFound(_) => ApiError::NotFound(error.to_string()),
            JobError::Cron(_) => ApiError::BadRequest(error.to_string()),
            JobError::Records(error) => error.into(),
        }
    }
}
