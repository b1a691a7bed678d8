// Placeholder until the validator lands: keeps the target buildable.
import ImportCore
