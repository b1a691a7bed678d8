// Glance 33's registered policies (glance/policies/*.py): every name, its default rule and its scope types.

/// One registered default: what a name means when the policy file does not set it.
public struct PolicyDefault: Sendable {
    public var name: String
    public var rule: String
    /// oslo.policy refuses a token whose scope is not listed (nil: any scope).
    public var scopeTypes: [String]?
}

extension PolicyEngine {
    // Glance's base.py building blocks.
    private static let adminOrProjectMember = "rule:context_is_admin or (role:member and project_id:%(project_id)s)"
    private static let adminOrProjectReader = "rule:context_is_admin or (role:reader and project_id:%(project_id)s)"
    private static let adminOrProjectReaderOrPublic = "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))"
    private static let adminOrReaderOwnerOrMember = "rule:context_is_admin or role:reader and (project_id:%(project_id)s or project_id:%(member_id)s)"
    private static let visibleImage =
        "(project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s)"

    /// All of Glance 33's defaults, so a `rule:` reference to any Glance name means what it means in Glance.
    public static let defaults: [PolicyDefault] = [
        PolicyDefault(name: "default", rule: "", scopeTypes: nil),
        PolicyDefault(name: "context_is_admin", rule: "role:admin", scopeTypes: nil),
        PolicyDefault(name: "service_api", rule: "role:service or role:admin", scopeTypes: nil),
        PolicyDefault(
            name: "add_image", rule: "rule:context_is_admin or (role:member and project_id:%(project_id)s and project_id:%(owner)s)", scopeTypes: ["project"]),
        PolicyDefault(name: "delete_image", rule: adminOrProjectMember, scopeTypes: ["project"]),
        PolicyDefault(name: "get_image", rule: "rule:context_is_admin or (role:reader and " + visibleImage + ")", scopeTypes: ["project"]),
        PolicyDefault(name: "get_images", rule: adminOrProjectReader, scopeTypes: ["project"]),
        PolicyDefault(name: "modify_image", rule: adminOrProjectMember, scopeTypes: ["project"]),
        PolicyDefault(name: "publicize_image", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "communitize_image", rule: adminOrProjectMember, scopeTypes: ["project"]),
        PolicyDefault(name: "download_image", rule: "rule:context_is_admin or (role:member and " + visibleImage + ")", scopeTypes: ["project"]),
        PolicyDefault(name: "download_from_store", rule: "rule:context_is_admin or (role:member and " + visibleImage + ")", scopeTypes: ["project"]),
        PolicyDefault(name: "upload_image", rule: adminOrProjectMember, scopeTypes: ["project"]),
        PolicyDefault(name: "delete_image_location", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "get_image_location", rule: adminOrProjectReader, scopeTypes: ["project"]),
        PolicyDefault(name: "set_image_location", rule: adminOrProjectMember, scopeTypes: ["project"]),
        PolicyDefault(
            name: "add_image_location", rule: "rule:service_api or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
            scopeTypes: ["project"]),
        PolicyDefault(name: "fetch_image_location", rule: "rule:service_api", scopeTypes: ["project"]),
        PolicyDefault(name: "add_member", rule: adminOrProjectMember, scopeTypes: ["project"]),
        PolicyDefault(name: "delete_member", rule: adminOrProjectMember, scopeTypes: ["project"]),
        PolicyDefault(name: "get_member", rule: adminOrReaderOwnerOrMember, scopeTypes: ["project"]),
        PolicyDefault(name: "get_members", rule: adminOrReaderOwnerOrMember, scopeTypes: ["project"]),
        PolicyDefault(name: "modify_member", rule: "rule:context_is_admin or (role:member and project_id:%(member_id)s)", scopeTypes: ["project"]),
        PolicyDefault(name: "manage_image_cache", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "deactivate", rule: adminOrProjectMember, scopeTypes: ["project"]),
        PolicyDefault(name: "reactivate", rule: adminOrProjectMember, scopeTypes: ["project"]),
        PolicyDefault(name: "copy_image", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "list_cached_nodes", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "get_task", rule: "rule:default", scopeTypes: ["project"]),
        PolicyDefault(name: "get_tasks", rule: "rule:default", scopeTypes: ["project"]),
        PolicyDefault(name: "add_task", rule: "rule:default", scopeTypes: ["project"]),
        PolicyDefault(name: "modify_task", rule: "rule:default", scopeTypes: ["project"]),
        PolicyDefault(name: "tasks_api_access", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "metadef_default", rule: "", scopeTypes: nil),
        PolicyDefault(name: "metadef_admin", rule: "rule:context_is_admin", scopeTypes: nil),
        PolicyDefault(name: "get_metadef_namespace", rule: adminOrProjectReaderOrPublic, scopeTypes: ["project"]),
        PolicyDefault(name: "get_metadef_namespaces", rule: adminOrProjectReader, scopeTypes: ["project"]),
        PolicyDefault(name: "modify_metadef_namespace", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "add_metadef_namespace", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "delete_metadef_namespace", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "get_metadef_object", rule: adminOrProjectReaderOrPublic, scopeTypes: ["project"]),
        PolicyDefault(name: "get_metadef_objects", rule: adminOrProjectReaderOrPublic, scopeTypes: ["project"]),
        PolicyDefault(name: "modify_metadef_object", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "add_metadef_object", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "delete_metadef_object", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "list_metadef_resource_types", rule: adminOrProjectReaderOrPublic, scopeTypes: ["project"]),
        PolicyDefault(name: "get_metadef_resource_type", rule: adminOrProjectReaderOrPublic, scopeTypes: ["project"]),
        PolicyDefault(name: "add_metadef_resource_type_association", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "remove_metadef_resource_type_association", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "get_metadef_property", rule: adminOrProjectReaderOrPublic, scopeTypes: ["project"]),
        PolicyDefault(name: "get_metadef_properties", rule: adminOrProjectReaderOrPublic, scopeTypes: ["project"]),
        PolicyDefault(name: "modify_metadef_property", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "add_metadef_property", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "remove_metadef_property", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "get_metadef_tag", rule: adminOrProjectReaderOrPublic, scopeTypes: ["project"]),
        PolicyDefault(name: "get_metadef_tags", rule: adminOrProjectReaderOrPublic, scopeTypes: ["project"]),
        PolicyDefault(name: "modify_metadef_tag", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "add_metadef_tag", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "add_metadef_tags", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "delete_metadef_tag", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "delete_metadef_tags", rule: "rule:metadef_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "cache_image", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "cache_list", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "cache_delete", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "cache_clean", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "cache_prune", rule: "rule:context_is_admin", scopeTypes: ["project"]),
        PolicyDefault(name: "stores_info_detail", rule: "rule:context_is_admin or rule:service_api", scopeTypes: ["project"]),
    ]
}
