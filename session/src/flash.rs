//! Flash slots: values that live for exactly one following request.

/// A flash slot: declare a field `#[session(flash)] notice: Flash<String>`.
///
/// A value set during request N (`set_notice`) is readable during request N+1 and gone
/// after N+1 completes, unless N+1 keeps it (`keep_notice`). A "now" value
/// (`notice_now`) is readable only during the request that set it and is never stored.
///
/// The slot only changes the stored session when its stored value really changes: reading
/// a flash value and keeping it writes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash<T> {
    current: Option<T>,
    next: Option<T>,
    now: Option<T>,
    keep: bool,
    saved: bool,
}

impl<T> Default for Flash<T> {
    fn default() -> Self {
        Self {
            current: None,
            next: None,
            now: None,
            keep: false,
            saved: false,
        }
    }
}

impl<T> Flash<T> {
    /// The value visible in this request: a "now" value, else the one set for this request.
    pub fn get(&self) -> Option<&T> {
        self.now.as_ref().or(self.current.as_ref())
    }

    /// Sets the value for the next request.
    pub fn set_next(&mut self, value: T) {
        self.next = Some(value);
        self.saved = false;
    }

    /// Keeps this request's value for the next request as well.
    pub fn keep(&mut self) {
        self.keep = true;
        self.saved = false;
    }

    /// Sets a value visible only in this request; it is never stored.
    pub fn set_now(&mut self, value: T) {
        self.now = Some(value);
    }

    /// The value to store: the next request's value, or this one's when kept.
    pub(crate) fn stored(&self) -> Option<&T> {
        self.next
            .as_ref()
            .or(if self.keep { self.current.as_ref() } else { None })
    }

    /// Whether the stored value differs from what the store holds.
    pub(crate) fn needs_write(&self) -> bool {
        !self.saved && (self.next.is_some() || (self.current.is_some() && !self.keep))
    }

    pub(crate) fn loaded(&mut self, value: Option<T>) {
        *self = Self {
            current: value,
            ..Self::default()
        };
    }

    pub(crate) fn mark_saved(&mut self) {
        self.saved = true;
    }
}

/// Implemented only by [`Flash<T>`]: the bound that makes `#[session(flash)]` on another
/// type a compile error.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`#[session(flash)]` needs a field of type `Flash<T>`, not `{Self}`",
    label = "not a flash slot",
    note = "declare the field as `Flash<{Self}>`, or remove `#[session(flash)]`"
)]
pub trait FlashSlot {
    type Value;
    fn current(&self) -> Option<&Self::Value>;
    fn set_next(&mut self, value: Self::Value);
    fn keep(&mut self);
    fn set_now(&mut self, value: Self::Value);
    fn needs_write(&self) -> bool;
    fn stored(&self) -> Option<&Self::Value>;
    fn loaded(&mut self, value: Option<Self::Value>);
    fn mark_saved(&mut self);
}

impl<T> FlashSlot for Flash<T> {
    type Value = T;
    fn current(&self) -> Option<&T> {
        self.get()
    }
    fn set_next(&mut self, value: T) {
        Flash::set_next(self, value);
    }
    fn keep(&mut self) {
        Flash::keep(self);
    }
    fn set_now(&mut self, value: T) {
        Flash::set_now(self, value);
    }
    fn needs_write(&self) -> bool {
        Flash::needs_write(self)
    }
    fn stored(&self) -> Option<&T> {
        Flash::stored(self)
    }
    fn loaded(&mut self, value: Option<T>) {
        Flash::loaded(self, value);
    }
    fn mark_saved(&mut self) {
        Flash::mark_saved(self);
    }
}
