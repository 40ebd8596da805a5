# What `cmake --install` puts where, and the Debian package CPack makes of it
# (installers/linux/build-deb.sh drives it: bundles and man pages first, then cpack).
#   /usr/bin/kilnd, /usr/bin/kiln, /usr/bin/bench_*      programs
#   /usr/lib/python3/dist-packages/kiln/                 the Python binding (shared/bindings/python)
#   /usr/share/kiln/clip/                                the CLIP BPE vocabulary and its licence
#   /usr/share/kiln/plugins/                             Krita zip, Blender zip, Photoshop .ccx when built
#   /usr/share/kiln/demo/                                the main job with the tiny model and sample layers
#   /usr/lib/systemd/user/kilnd.{service,socket}         the user service and its socket
#   /usr/share/man/man1/, /usr/share/doc/kiln/           man pages, copyright, changelog

set(_units ${PROJECT_SOURCE_DIR}/installers/linux/systemd)
# ExecStart names kilnd where this install puts it (/usr/bin in the package), known at install time.
install(CODE "
  set(KILND_PATH \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/kilnd\")
  configure_file(\"${_units}/kilnd.service\" \"${CMAKE_BINARY_DIR}/systemd/kilnd.service\" @ONLY)")
install(FILES ${CMAKE_BINARY_DIR}/systemd/kilnd.service ${_units}/kilnd.socket DESTINATION lib/systemd/user)

# Made by build-deb.sh before cpack runs (OPTIONAL: a plain `cmake --install` works without them).
foreach(_bundle krita/kiln-krita-${PROJECT_VERSION}.zip blender/kiln-blender-${PROJECT_VERSION}.zip
                photoshop/kiln-photoshop-${PROJECT_VERSION}.ccx)
  install(FILES ${CMAKE_BINARY_DIR}/${_bundle} DESTINATION ${CMAKE_INSTALL_DATADIR}/kiln/plugins OPTIONAL)
endforeach()
foreach(_page kilnd kiln)
  install(FILES ${CMAKE_BINARY_DIR}/man/${_page}.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 OPTIONAL)
endforeach()

install(PROGRAMS ${PROJECT_SOURCE_DIR}/installers/linux/main-job.sh DESTINATION ${CMAKE_INSTALL_DATADIR}/kiln/demo)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/installers/sample-data/product DESTINATION ${CMAKE_INSTALL_DATADIR}/kiln/demo)
# Kiln Mini: the 64×64 base model Kiln trained itself (mini/README.md); the main job's default.
install(FILES ${PROJECT_SOURCE_DIR}/mini/kiln-mini.safetensors DESTINATION ${CMAKE_INSTALL_DATADIR}/kiln/demo)

install(FILES ${PROJECT_SOURCE_DIR}/installers/linux/debian/copyright DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kiln)
# A native package (no Debian revision): its changelog is changelog.gz.
install(FILES ${CMAKE_BINARY_DIR}/debian/changelog.gz DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kiln OPTIONAL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kiln)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Kiln")
set(CPACK_PACKAGE_CONTACT "Kiln developers <kiln-dev@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "local LoRA studio for Krita, Blender and Photoshop")
# The extended description: lines under 80 columns (Debian policy; lintian checks it).
set(CPACK_PACKAGE_DESCRIPTION
    "Kiln trains and uses Stable Diffusion LoRAs of your own product, character\n"
    "or style on your own machine. One daemon, kilnd, owns the GPU, the models,\n"
    "the LoRA library and the job queue; the kiln command line and the Krita,\n"
    "Blender and Photoshop plugins are thin clients over a local socket.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)            # kiln_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION graphics)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)             # library dependencies from dpkg-shlibdeps
# LibTorch links the generic BLAS name; without OpenBLAS Debian picks the reference BLAS, several
# times slower. The binding is built for Debian 12's Python (Krita's and Blender's).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libopenblas0-pthread, python3 (>= 3.11), python3 (<< 3.12)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "krita, blender")
set(CPACK_STRIP_FILES ON)
include(CPack)
