// Why importctl got no usable answer from the API, or from Keystone before it: said for people, with an exit code.

/// Why a request, or the Keystone login before it, got no usable answer.
enum RemoteFailure: CtlFailure {
    case badURL(variable: String, value: String)
    case missingCredential(variable: String)
    case unreachable(url: String, reason: String)
    /// The daemon's Unix socket could not be connected to, or closed before answering.
    case socketUnreachable(path: String, reason: String)
    /// The listener answered 401: the token is not valid there, or none was sent.
    case tokenRefused(url: String, origin: TokenSource.Origin, detail: String)
    case answerCutOff(url: String, reason: String)
    case fileUnreadable(reason: String)
    case caFileUnreadable(path: String)
    case keystoneUnreachable(url: String, reason: String)
    case keystoneRefused(url: String, user: String, project: String, status: Int, detail: String)
    case keystoneUnexpected(url: String, status: Int, detail: String)

    var exit: CtlExit {
        switch self {
        case .badURL, .missingCredential, .caFileUnreadable: return .usage
        case .unreachable, .socketUnreachable, .answerCutOff, .keystoneUnreachable: return .unreachable
        case .fileUnreadable: return .failure
        case .keystoneRefused, .tokenRefused: return .forbidden
        case .keystoneUnexpected: return .serverError
        }
    }

    var description: String {
        switch self {
        case let .badURL(variable, value):
            return "\(variable) must be an http:// or https:// URL with a host, not '\(value)'"
        case let .missingCredential(variable):
            return
                "OS_AUTH_URL is set but \(variable) is not: set OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME (or OS_PROJECT_ID) to log in to Keystone, or give a token with OS_AUTH_TOKEN"
        case let .unreachable(url, reason):
            return
                "cannot reach the image service at \(url) (\(reason)); check OS_IMAGE_URL (or --os-image-url) and that stagingfs listens there (bind_host, bind_port)"
        case let .socketUnreachable(path, reason):
            return "cannot reach stagingfs at \(path): \(reason); is the daemon running? (set --socket or STAGINGFS_SOCKET)"
        case let .tokenRefused(url, origin, detail):
            switch origin {
            case .none:
                return
                    "the image service at \(url) refused the request without a token (\(detail)): set OS_AUTH_TOKEN, or OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME so that importctl gets one from Keystone"
            case .given:
                return
                    "the image service at \(url) refused the token in OS_AUTH_TOKEN (\(detail)): it is expired, revoked or from another Keystone; get a fresh one with `openstack token issue -f value -c id`, or unset it and set OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME"
            case let .keystone(credentials):
                return
                    "the image service at \(url) refused the token Keystone at \(credentials.authURL) issued (\(detail)): does the daemon validate tokens with that Keystone ([keystone_authtoken] auth_url)? check OS_AUTH_URL"
            }
        case let .answerCutOff(url, reason):
            return "the image service at \(url) did not answer completely (\(reason))"
        case let .fileUnreadable(reason):
            return "cannot read the file being uploaded: \(reason)"
        case let .caFileUnreadable(path):
            return "OS_CACERT names \(path), which cannot be read"
        case let .keystoneUnreachable(url, reason):
            return "cannot reach Keystone at \(url) (\(reason)); check OS_AUTH_URL"
        case let .keystoneRefused(url, user, project, status, detail):
            return
                "Keystone at \(url) refused user '\(user)' for project '\(project)' (HTTP \(status): \(detail)); check OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME and OS_USER_DOMAIN_NAME/OS_PROJECT_DOMAIN_NAME"
        case let .keystoneUnexpected(url, status, detail):
            return "Keystone at \(url) answered HTTP \(status) (\(detail))"
        }
    }
}
