// Previews for the panel's <img>: UXP images take data URLs, and only JPEG encoding of pixels is
// offered (imaging.encodeImageData); training samples are PNG files kilnd wrote, shown as they are.

import { imaging } from "photoshop";

import { Preview } from "../core/controller";
import { SRGB_PROFILE } from "./photoshop_canvas";

function base64(bytes: Uint8Array): string {
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  return btoa(binary);
}

export async function previewUrl(preview: Preview): Promise<string> {
  if (preview.kind === "png") return "data:image/png;base64," + base64(preview.bytes);
  const p = preview.pixels;
  const imageData = await imaging.createImageDataFromBuffer(p.data, {
    width: p.width, height: p.height, components: p.components, chunky: true, colorProfile: SRGB_PROFILE, colorSpace: "RGB",
  });
  try {
    const jpeg = await imaging.encodeImageData({ imageData, base64: true });
    return "data:image/jpeg;base64," + String(jpeg);
  } finally {
    await imageData.dispose();
  }
}
