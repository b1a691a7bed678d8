// web-download's URI filter ([import_filtering_opts]) as Glance applies it, its configuration, and URI parsing.
import Foundation
import Testing

@testable import ImportCore

@Suite("Web download filter")
struct WebDownloadFilterTests {
    static func options(_ change: (inout ImportFilteringOptions) -> Void) -> ImportFilteringOptions {
        var options = ImportFilteringOptions()
        change(&options)
        return options
    }

    /// (options, URI, the option that refuses it or nil when it passes, the refused value)
    static let table: [(ImportFilteringOptions, String, ImportFilteringOptions.Option?, String)] = [
        (ImportFilteringOptions(), "http://images.example.com/cirros.img", nil, ""),
        (ImportFilteringOptions(), "HTTPS://Images.Example.com:443/x", nil, ""),
        (ImportFilteringOptions(), "http://images.example.com:8080/x", .allowedPorts, "8080"),
        (ImportFilteringOptions(), "ftp://images.example.com/x", .allowedSchemes, "ftp"),
        (ImportFilteringOptions(), "file:///etc/passwd", .allowedSchemes, "file"),
        // The deny-list counts only when the allow-list is empty.
        (
            options {
                $0.allowedSchemes = []; $0.disallowedSchemes = ["ftp"]
            }, "ftp://a.example/x", .disallowedSchemes, "ftp"
        ),
        (
            options {
                $0.allowedSchemes = []; $0.disallowedSchemes = ["ftp"]
            }, "gopher://a.example/x", nil, ""
        ),
        (
            options {
                $0.allowedSchemes = ["http"]; $0.disallowedSchemes = ["http"]
            }, "http://a.example/x", nil, ""
        ),
        (options { $0.allowedHosts = ["a.example"] }, "http://b.example/x", .allowedHosts, "b.example"),
        (options { $0.allowedHosts = ["a.example"] }, "http://A.Example/x", nil, ""),
        (options { $0.disallowedHosts = ["b.example"] }, "http://b.example/x", .disallowedHosts, "b.example"),
        (options { $0.disallowedHosts = ["b.example"] }, "http://a.example/x", nil, ""),
        (
            options {
                $0.allowedHosts = ["a.example"]; $0.disallowedHosts = ["a.example"]
            }, "http://a.example/x", nil, ""
        ),
        (options { $0.disallowedHosts = ["10.0.0.1"] }, "http://10.0.0.1/x", .disallowedHosts, "10.0.0.1"),
        (options { $0.allowedHosts = ["::1"] }, "http://[0:0:0:0:0:0:0:1]/x", nil, ""),
        (options { $0.allowedHosts = ["::1"] }, "http://[::2]/x", .allowedHosts, "::2"),
        (
            options {
                $0.allowedPorts = []; $0.disallowedPorts = [8080]
            }, "http://a.example:8080/x", .disallowedPorts, "8080"
        ),
        (
            options {
                $0.allowedPorts = []; $0.disallowedPorts = [8080]
            }, "http://a.example:8081/x", nil, ""
        ),
        (
            options {
                $0.allowedPorts = [80]; $0.disallowedPorts = [80]
            }, "http://a.example:80/x", nil, ""
        ),
        // Glance filters only a port the URI spells.
        (options { $0.allowedPorts = [8080] }, "http://a.example/x", nil, ""),
        // Scheme first, then host, then port.
        (options { $0.allowedHosts = ["a.example"] }, "ftp://b.example:21/x", .allowedSchemes, "ftp"),
        (options { $0.allowedHosts = ["a.example"] }, "http://b.example:21/x", .allowedHosts, "b.example"),
    ]

    @Test("allow and deny lists combine as in Glance", arguments: table.indices)
    func allowAndDeny(_ index: Int) {
        let (options, uri, option, value) = Self.table[index]
        if let option {
            #expect(throws: DownloadError.refused(uri: uri, option: option, value: value)) { try options.validate(uri) }
        } else {
            #expect(throws: Never.self) { try options.validate(uri) }
        }
    }

    @Test("a refusal names the rule and the option to change")
    func refusalMessages() {
        #expect(
            DownloadError.refused(uri: "ftp://h/x", option: .allowedSchemes, value: "ftp").description
                == "web-download refused ftp://h/x: the scheme 'ftp' is not in [import_filtering_opts] allowed_schemes; use a URI it allows, or ask the operator to add 'ftp' to it"
        )
        #expect(
            DownloadError.refused(uri: "http://h:8/x", option: .disallowedPorts, value: "8").description
                == "web-download refused http://h:8/x: the port 8 is in [import_filtering_opts] disallowed_ports; use another URI, or ask the operator to remove 8 from it"
        )
    }

    @Test(
        "malformed URIs and encoded IP addresses are refused",
        arguments: [
            "", "images.example.com/x", "http:/x", "http://", "http://h:0/", "http://h:70000/", "http://h:8o/",
            "http://user@h/", "http://[::1/", "http://h st/", "http://2130706433/", "http://127.1/", "http://0x7f.1/x y",
        ])
    func malformed(_ uri: String) {
        let error = #expect(throws: DownloadError.self) { try ImportFilteringOptions().validate(uri) }
        guard case .malformedURI(uri, _) = error else {
            Issue.record("expected malformedURI for '\(uri)', got \(String(describing: error))")
            return
        }
    }

    @Test("resolved addresses: this host's (loopback, 0.0.0.0, ::) and link-local only for allowed hosts, disallowed addresses never")
    func addresses() {
        let open = ImportFilteringOptions()
        for address in [
            "127.0.0.1", "127.8.9.10", "169.254.169.254", "::1", "fe80::1", "::ffff:127.0.0.1", "garbage",
            "0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0", "::127.0.0.1", "::ffff:169.254.169.254",
        ] {
            #expect(!open.permits(address: address, of: "sneaky.example"), "\(address)")
        }
        for address in ["10.0.0.5", "192.168.1.2", "93.184.216.34", "2001:db8::1"] {
            #expect(open.permits(address: address, of: "images.example"), "\(address)")
        }
        #expect(Self.options { $0.allowedHosts = ["localhost"] }.permits(address: "127.0.0.1", of: "localhost"))
        #expect(!Self.options { $0.disallowedHosts = ["10.0.0.5"] }.permits(address: "10.0.0.5", of: "internal.example"))
    }

    @Test("web_download_refuse_private_addresses refuses private ranges in every form, unless allowed_hosts names the host")
    func privateAddresses() {
        let refusing = Self.options { $0.refusePrivateAddresses = true }
        let privateAddresses = [
            "10.0.0.5", "172.16.0.1", "172.31.255.254", "192.168.1.2", "100.64.0.1", "fd00::1", "fc12::5",
            "::ffff:10.1.2.3", "::ffff:192.168.0.1",
        ]
        for address in privateAddresses {
            #expect(!refusing.permits(address: address, of: "internal.example"), "\(address)")
            #expect(ImportFilteringOptions().permits(address: address, of: "internal.example"), "off by default, as in Glance: \(address)")
        }
        for address in ["172.32.0.1", "172.15.255.1", "100.128.0.1", "93.184.216.34", "2001:db8::1", "fe00::1"] {
            #expect(refusing.permits(address: address, of: "images.example"), "\(address) is not private")
        }
        var allowing = refusing
        allowing.allowedHosts = ["mirror.internal"]
        #expect(allowing.permits(address: "10.0.0.5", of: "mirror.internal"))
    }

    @Test("[import_filtering_opts] is read with oslo.config's list syntax; unset options keep Glance's defaults")
    func configuration() throws {
        var ini = INIFile()
        try ini.merge(
            text: """
                [import_filtering_opts]
                allowed_schemes = HTTP
                allowed_hosts = [images.example.com, '10.0.0.1']
                allowed_ports = 80,8080
                disallowed_ports =
                """, file: "glance-api.conf")
        let options = try ImportFilteringOptions(ini)
        #expect(options.allowedSchemes == ["http"])
        #expect(options.allowedHosts == ["images.example.com", "10.0.0.1"])
        #expect(options.allowedPorts == [80, 8080])
        #expect(options.disallowedPorts == [])
        #expect(options.disallowedSchemes == [] && options.disallowedHosts == [])
        #expect(try ImportFilteringOptions(INIFile()) == ImportFilteringOptions())

        var bad = INIFile()
        try bad.merge(text: "[import_filtering_opts]\nallowed_ports = 80, http\n", file: "glance-api.conf")
        #expect(
            throws: ConfigurationError.invalidValue(
                option: "[import_filtering_opts] allowed_ports", value: "80, http", file: "glance-api.conf", line: 2,
                expected: "a list of port numbers from 1 to 65535")
        ) {
            try ImportFilteringOptions(bad)
        }
    }

    @Test("Location headers resolve against the URI that answered")
    func redirects() throws {
        let base = try WebURI(parsing: "http://h:8/a/b?q#f")
        #expect(base.target == "/a/b?q" && base.port == 8 && base.authority == "h:8")
        #expect(try base.resolving("c").description == "http://h:8/a/c")
        #expect(try base.resolving("/x?y").description == "http://h:8/x?y")
        #expect(try base.resolving("?z").description == "http://h:8/a/b?z")
        #expect(try base.resolving("//other/y").description == "http://other/y")
        #expect(try base.resolving("https://s/").description == "https://s/")
        #expect(try base.resolving("#g").description == "http://h:8/a/b?q")
        #expect(try WebURI(parsing: "http://[::1]:81").description == "http://[::1]:81/")
    }
}
