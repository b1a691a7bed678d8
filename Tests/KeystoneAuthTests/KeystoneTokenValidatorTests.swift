import Testing
@testable import KeystoneAuth
