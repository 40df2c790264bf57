// The sign-in page: the admin token goes from the password field into the Authorization
// header of one request, which answers with an HttpOnly session cookie. The token is never
// put in a URL or in browser storage, and the field is emptied at once.
const form = document.getElementById('sign-in');
const error = document.getElementById('sign-in-error');

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const field = form.elements.token;
  const token = field.value.trim();
  field.value = '';
  error.textContent = '';
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    const response = await fetch('/console/session', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
    });
    if (response.status === 201) {
      location.replace(form.dataset.next || '/');
      return;
    }
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      message = `${body.error.message} (${response.status} ${body.error.code})`;
    } catch {
      // keep the status line
    }
    error.textContent = response.status === 401 || response.status === 403
      ? `Sign-in refused: ${message}. Use an admin token (dta_…).`
      : `Sign-in failed: ${message}`;
    field.focus();
  } catch (failure) {
    error.textContent = `The server could not be reached: ${failure.message}`;
  } finally {
    button.disabled = false;
  }
});
