//! Typed management commands: one struct per FC API operation, its request parameters named
//! as FC names them (`functionName`, `aliasName`, `limit`, `nextToken`, ...), so the gateway
//! fills one from a request's path and query with serde. Operations that take a JSON
//! document (the request body) are [`BodyCommand`]s, run as [`WithBody`].

use bytes::Bytes;

use crate::{ControlError, ControlPlane};

/// One management operation. [`ControlPlane::execute`] is the only caller of [`run`](Self::run).
pub trait Command: Send + 'static {
    /// What the operation answers (serialized by the gateway).
    type Output: Send + 'static;

    /// Does the work; may block on the store.
    fn run(self, control: &ControlPlane, off: OffWorker) -> Result<Self::Output, ControlError>;
}

/// An operation whose input is an FC JSON document as well as its parameters.
pub trait BodyCommand: Send + 'static {
    /// What the operation answers (serialized by the gateway).
    type Output: Send + 'static;

    /// Does the work with `body`, the document as the caller sent it (parsed and validated
    /// here, after the checks FC makes first, such as whether the function exists).
    fn run(
        self,
        control: &ControlPlane,
        body: &[u8],
        off: OffWorker,
    ) -> Result<Self::Output, ControlError>;
}

/// A [`BodyCommand`] with its document.
pub struct WithBody<C> {
    /// The operation, with its parameters.
    pub command: C,
    /// The request body, read whole (up to the route's limit).
    pub body: Bytes,
}

impl<C: BodyCommand> Command for WithBody<C> {
    type Output = C::Output;

    fn run(self, control: &ControlPlane, off: OffWorker) -> Result<C::Output, ControlError> {
        self.command.run(control, &self.body, off)
    }
}

/// Proof that a command runs on a blocking thread: only [`ControlPlane::execute`] makes one,
/// so a command cannot be run on an async worker by mistake.
pub struct OffWorker(pub(crate) ());
