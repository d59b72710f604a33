/**
 * The extension's icon (layers: overlays stacked on an application), registered once as a
 * LabIcon so the sidebar tab, the settings editor and the palette share it.
 */

import { LabIcon } from '@jupyterlab/ui-components';

import overlaysSvg from '../style/icons/overlays.svg';

export const overlaysIcon = new LabIcon({ name: 'overlay-sdk:overlays', svgstr: overlaysSvg });
