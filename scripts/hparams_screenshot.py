r"""Screenshots of a sweep in TensorBoard's HParams dashboard, from a real TensorBoard server
on localhost seen by headless Chromium (through Selenium and chromedriver).

  python scripts/hparams_screenshot.py results/mnist_rd results/figures/hparams

writes `<prefix>_table.png` (the table view) and `<prefix>_scatter.png` (the scatter plot
matrix: test rate, distortion and ELBO against each other and against beta), showing the
hyper-parameters family, beta and anneal_epochs and the test metrics. It needs
`tensorboard` (installed with the package), Chromium and chromedriver (Debian:
`apt-get install chromium chromium-driver`) and `pip install selenium`. The sweep needs its
HParams experiment and sessions: `python -m brokenelbo.sweep --collect_only` writes them.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

SHOWN = ('family', 'beta', 'anneal_epochs', 'eval/test/rate', 'eval/test/distortion',
         'eval/test/elbo')
HIDDEN = ('encoder', 'decoder', 'marginal', 'dataset', 'seed', 'epochs', 'batch_size',
          'eval/train/rate', 'eval/train/distortion', 'eval/train/elbo')

# The dashboard is made of web components: its checkboxes and tabs sit in shadow roots.
_FIND = """
function all(root, out) {
  for (const e of root.querySelectorAll('*')) { out.push(e); if (e.shadowRoot) all(e.shadowRoot, out); }
  return out;
}
return all(document, []).filter(
    e => e.tagName.toLowerCase() == arguments[0] && (e.innerText || '').trim() == arguments[1]);
"""


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _wait_for_sessions(url, process, timeout=300):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if process.poll() is not None:
      sys.exit(f'error: tensorboard exited with status {process.returncode}')
    try:
      request = urllib.request.Request(f'{url}/data/plugin/hparams/experiment', data=b'{}',
                                       headers={'Content-Type': 'application/json'})
      if b'hparamInfos' in urllib.request.urlopen(request, timeout=10).read():
        return
    except OSError:
      pass
    time.sleep(1)
  sys.exit(f'error: tensorboard showed no HParams experiment within {timeout} s')


def _click(driver, tag, text, checked=None):
  """Clicks the element `tag` whose text is `text` (a checkbox only if its state differs
  from `checked`)."""
  elements = driver.execute_script(_FIND, tag, text)
  if not elements:
    sys.exit(f'error: the dashboard has no {tag} {text!r}')
  element = elements[0]
  if checked is None or (element.get_attribute('aria-checked') == 'true') != checked:
    driver.execute_script('arguments[0].click();', element)


def main(logdir, prefix):
  if not os.path.isdir(logdir):
    sys.exit(f'error: {logdir} is not a folder')
  port = _free_port()
  url = f'http://127.0.0.1:{port}'
  server = subprocess.Popen(['tensorboard', f'--logdir={logdir}', '--host=127.0.0.1',
                             f'--port={port}'], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  options = webdriver.ChromeOptions()
  options.binary_location = '/usr/bin/chromium'
  for argument in ('--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                   '--window-size=1600,1000'):
    options.add_argument(argument)
  driver = None
  try:
    _wait_for_sessions(url, server)
    driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
    driver.get(f'{url}/?darkMode=false#hparams')
    time.sleep(5)
    for name in SHOWN:
      _click(driver, 'paper-checkbox', name, checked=True)
    for name in HIDDEN:
      _click(driver, 'paper-checkbox', name, checked=False)
    time.sleep(3)
    driver.save_screenshot(f'{prefix}_table.png')
    _click(driver, 'paper-tab', 'SCATTER PLOT MATRIX VIEW')
    time.sleep(5)
    driver.save_screenshot(f'{prefix}_scatter.png')
  finally:
    if driver is not None:
      driver.quit()
    server.terminate()
    server.wait(timeout=30)
  print(f'{prefix}_table.png {prefix}_scatter.png')


if __name__ == '__main__':
  if len(sys.argv) != 3:
    sys.exit(__doc__)
  main(*sys.argv[1:])
