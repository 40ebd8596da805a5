"""Kiln for Krita: build LoRA datasets from layers, train LoRAs and generate into layers with the
local Kiln daemon (kilnd), which does all the work. See manual.html."""

from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita

from .docker import KilnDocker

DOCKER_ID = "kiln_docker"

Krita.instance().addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, KilnDocker))
