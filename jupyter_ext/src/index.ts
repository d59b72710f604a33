/**
 * The JupyterLab plugin of overlay-sdk: the "AI Overlays" left sidebar, its commands and
 * its settings (`refreshInterval` seconds, `controlPlane`; schema/plugin.json).
 *
 * Talks only to the overlay-sdk server extension (overlay_sdk/jupyter, REST contract in
 * docs/jupyter-extension-api.md) through api.ts.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { OverlayClient } from './api';
import { addCommands } from './commands';
import { DEFAULT_REFRESH_SECONDS, OverlaySidebar, SIDEBAR_ID } from './sidebar';

export const PLUGIN_ID = '@overlay-sdk/jupyterlab-ext:plugin';

/** Where the sidebar sits among the left panels (file browser 100, running 200, ...). */
const SIDEBAR_RANK = 700;

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'A sidebar and commands for overlay-sdk: overlays, traffic, revisions, rollback.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    tracker: INotebookTracker | null
  ): void => {
    let plane = '';
    const client = new OverlayClient({
      serverSettings: app.serviceManager.serverSettings,
      plane: () => plane
    });
    const sidebar = new OverlaySidebar({ client });
    app.shell.add(sidebar, 'left', { rank: SIDEBAR_RANK });
    if (restorer) {
      restorer.add(sidebar, SIDEBAR_ID);
    }
    addCommands({ app, sidebar, palette, tracker });

    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings): void => {
        const interval = settings.get('refreshInterval').composite;
        const address = settings.get('controlPlane').composite;
        sidebar.refreshInterval =
          typeof interval === 'number' ? interval : DEFAULT_REFRESH_SECONDS;
        const next = typeof address === 'string' ? address.trim() : '';
        if (next !== plane) {
          plane = next;
          void sidebar.refresh();
        }
      };
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error('overlay-sdk: could not load the settings', reason);
        });
    }
  }
};

export default plugin;
