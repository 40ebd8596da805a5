// UXP's own modules ("uxp": storage, entrypoints, ...) from Adobe's type package.
/// <reference types="@adobe/cc-ext-uxp-types" />
