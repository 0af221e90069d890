//! votequorum messages (placeholder; being written).
