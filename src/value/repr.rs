//! Python's `repr()` of values. (Being written.)
