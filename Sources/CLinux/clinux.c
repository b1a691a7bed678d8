// Intentionally empty: this target only exports include/clinux.h.
