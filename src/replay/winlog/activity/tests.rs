//! Activity mapping tests.
