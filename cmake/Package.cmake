# `make package`: a Debian package of kiln (CPack DEB). `cpack --config CPackConfig.cmake` in
# the build dir writes kiln_<version>_<arch>.deb; tests/package/deb_test.cc installs it into a
# fresh Debian root and runs a job from it.
install(TARGETS kiln kiln-runtime RUNTIME DESTINATION bin)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/kiln.service DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/debian/kiln.default DESTINATION /etc/default
        RENAME kiln)
# `cpack` installs what is built; it does not build everything first (the tests and benches).
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kiln)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "kiln maintainers <kiln@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "runs autonomous AI coding agents in isolated sandboxes")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# What kiln runs besides its libraries: git for workspaces, mkfs.ext4 for sandbox disk quotas;
# debootstrap only for `kiln image build`.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "git, e2fsprogs")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates, debootstrap")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/deploy/debian/conffiles
    ${CMAKE_SOURCE_DIR}/deploy/debian/postinst ${CMAKE_SOURCE_DIR}/deploy/debian/prerm
    ${CMAKE_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
